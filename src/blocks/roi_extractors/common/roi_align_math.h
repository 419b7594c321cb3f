// RoIAlign per-element math shared by the CPU kernel (cpu/roi_align.cpp, g++) and the CUDA kernel
// (cuda/roi_align_cuda_kernel.cu, nvcc), float32, plus the input checks both AOT entry points make.
//
// The math functions are inline and marked RA_HOST_DEVICE, so nvcc compiles them for host and device and g++ sees
// plain inline functions. Convention (torchvision roi_align), as described in cpu/roi_align.cpp:
//   aligned = 0: box [x1 * s, x2 * s], size max(size, 1); aligned = 1: both ends shifted by -0.5, no minimum size.
//   Bin (ph, pw) averages grid_h x grid_w bilinear samples, grid = sampling_ratio or ceil(roi_size / out) when
//   sampling_ratio == 0. A sample beyond one pixel outside the map counts as zero.
#ifndef ROI_EXTRACTORS_COMMON_ROI_ALIGN_MATH_H_
#define ROI_EXTRACTORS_COMMON_ROI_ALIGN_MATH_H_

#include <cmath>
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define RA_HOST_DEVICE __host__ __device__
#else
#define RA_HOST_DEVICE
#endif

namespace roi_align {

// Op settings decoded from the scalars tensor (sampling_ratio, aligned, spatial_scale_0 .. _{L-1}).
struct Settings {
  int sampling_ratio;
  bool aligned;
  const float *scales;
};

// Sampling geometry of one RoI on its level: first sample corner, bin size, samples per bin, 1 / samples per bin.
struct RoiGeometry {
  int batch;
  float start_x;
  float start_y;
  float bin_w;
  float bin_h;
  int grid_w;
  int grid_h;
  float inv_count;
};

// Bilinear interpolation along one axis: sample at coord -> (low, high) pixels with weights; zero weights when the
// sample lies more than one pixel outside [0, size - 1].
struct AxisTap {
  int low;
  int high;
  float weight_low;
  float weight_high;
};

RA_HOST_DEVICE inline Settings read_settings(const float *scalars) {
  return Settings{static_cast<int>(lrintf(scalars[0])), scalars[1] > 0.5f, scalars + 2};
}

// Batch index of a RoI row (batch_index, x1, y1, x2, y2), rounded to the nearest integer.
RA_HOST_DEVICE inline long roi_batch_index(const float *roi) { return lrintf(roi[0]); }

RA_HOST_DEVICE inline RoiGeometry roi_geometry(const float *roi, float scale, int out, int sampling_ratio,
                                               bool aligned) {
  RoiGeometry geometry;
  geometry.batch = static_cast<int>(roi_batch_index(roi));
  const float offset = aligned ? 0.5f : 0.0f;
  geometry.start_x = roi[1] * scale - offset;
  geometry.start_y = roi[2] * scale - offset;
  float roi_w = roi[3] * scale - offset - geometry.start_x;
  float roi_h = roi[4] * scale - offset - geometry.start_y;
  if (!aligned) {
    roi_w = fmaxf(roi_w, 1.0f);
    roi_h = fmaxf(roi_h, 1.0f);
  }
  geometry.bin_w = roi_w / static_cast<float>(out);
  geometry.bin_h = roi_h / static_cast<float>(out);
  geometry.grid_w = sampling_ratio > 0 ? sampling_ratio : static_cast<int>(ceilf(roi_w / static_cast<float>(out)));
  geometry.grid_h = sampling_ratio > 0 ? sampling_ratio : static_cast<int>(ceilf(roi_h / static_cast<float>(out)));
  if (geometry.grid_w < 0) geometry.grid_w = 0;
  if (geometry.grid_h < 0) geometry.grid_h = 0;
  const int count = geometry.grid_w * geometry.grid_h;
  geometry.inv_count = 1.0f / static_cast<float>(count > 1 ? count : 1);
  return geometry;
}

// Coordinate of sample i (of grid) inside bin p along one axis.
RA_HOST_DEVICE inline float sample_coord(float start, float bin, int p, int i, int grid) {
  return start + p * bin + (i + 0.5f) * bin / static_cast<float>(grid);
}

RA_HOST_DEVICE inline AxisTap axis_tap(float coord, int size) {
  AxisTap tap{0, 0, 0.0f, 0.0f};
  if (coord < -1.0f || coord > static_cast<float>(size)) return tap;
  if (coord <= 0.0f) coord = 0.0f;
  int low = static_cast<int>(coord);
  int high;
  if (low >= size - 1) {
    low = high = size - 1;
    coord = static_cast<float>(low);
  } else {
    high = low + 1;
  }
  const float frac = coord - static_cast<float>(low);
  tap.low = low;
  tap.high = high;
  tap.weight_low = 1.0f - frac;
  tap.weight_high = frac;
  return tap;
}

// False for a tap whose sample lies outside the map (both weights zero).
RA_HOST_DEVICE inline bool tap_samples(const AxisTap &tap) {
  return !(tap.weight_low == 0.0f && tap.weight_high == 0.0f);
}

// Bilinear value of one sample from its rows (ty.low, ty.high) of a feature plane and its column tap tx.
RA_HOST_DEVICE inline float bilinear_value(const float *row_low, const float *row_high, const AxisTap &ty,
                                           const AxisTap &tx) {
  return ty.weight_low * (tx.weight_low * row_low[tx.low] + tx.weight_high * row_low[tx.high]) +
         ty.weight_high * (tx.weight_low * row_high[tx.low] + tx.weight_high * row_high[tx.high]);
}

// Scatters one sample's gradient into its rows of a gradient plane through `add(address, value)`; grad_low and
// grad_high are the bin gradient times the row weights ty.weight_low and ty.weight_high.
template <typename Add>
RA_HOST_DEVICE inline void bilinear_scatter(float *row_low, float *row_high, float grad_low, float grad_high,
                                            const AxisTap &tx, Add add) {
  add(row_low + tx.low, grad_low * tx.weight_low);
  add(row_low + tx.high, grad_low * tx.weight_high);
  add(row_high + tx.low, grad_high * tx.weight_low);
  add(row_high + tx.high, grad_high * tx.weight_high);
}

// Host-side checks of the entry points' inputs: rois [K, 5] float32 at params index rois_i, then levels [K] int32
// and scalars [L + 2] float32.
inline bool check_roi_inputs(int rois_i, int num_levels, const int *ndims, int64_t **shapes, const char **dtypes) {
  const int levels_i = rois_i + 1;
  const int scalars_i = rois_i + 2;
  return ndims[rois_i] == 2 && shapes[rois_i][1] == 5 && std::strcmp(dtypes[rois_i], "float32") == 0 &&
         ndims[levels_i] == 1 && shapes[levels_i][0] == shapes[rois_i][0] &&
         std::strcmp(dtypes[levels_i], "int32") == 0 && ndims[scalars_i] == 1 &&
         shapes[scalars_i][0] == num_levels + 2 && std::strcmp(dtypes[scalars_i], "float32") == 0;
}

// Forward: out_template [out, out] at params index num_levels + 3 and output [K, channels, out, out] after it.
inline bool check_forward_output(int num_levels, int64_t channels, const int *ndims, int64_t **shapes) {
  const int out_i = num_levels + 4;
  const int template_i = num_levels + 3;
  const int64_t num_rois = shapes[num_levels][0];
  return ndims[out_i] == 4 && shapes[out_i][0] == num_rois && shapes[out_i][1] == channels &&
         shapes[out_i][2] == shapes[out_i][3] && ndims[template_i] == 2 &&
         shapes[template_i][0] == shapes[out_i][2] && shapes[template_i][1] == shapes[out_i][3];
}

// Backward: grad_out [K, channels, out, out] at params index 0, K taken from rois at index 1.
inline bool check_backward_grad_out(int64_t channels, const int *ndims, int64_t **shapes) {
  return ndims[0] == 4 && shapes[0][0] == shapes[1][0] && shapes[0][1] == channels && shapes[0][2] == shapes[0][3];
}

}  // namespace roi_align

#endif  // ROI_EXTRACTORS_COMMON_ROI_ALIGN_MATH_H_
