// RoIAlign forward and backward on CPU, float32, as MindSpore AOT custom-op entry points.
//
// Both entry points handle L feature levels in one call; each RoI is sampled only on its own level.
//   RoIAlignForward  inputs:  feature_0 .. feature_{L-1} [N, C, H_l, W_l] float32, rois [K, 5] float32
//                             (batch_index, x1, y1, x2, y2 in input pixels), levels [K] int32,
//                             scalars [L + 2] float32 = (sampling_ratio, aligned, spatial_scale_0 .. _{L-1}),
//                             out_template [out, out] float32 (only its shape is used: MindSpore keeps one shape
//                             function per AOT symbol, so the output size must follow from the input shapes)
//                    output:  [K, C, out, out] float32
//   RoIAlignBackward inputs:  grad_out [K, C, out, out], rois, levels, scalars, feature_0 .. feature_{L-1}
//                             (features only give the output shapes; their data is not read)
//                    outputs: grad_feature_0 .. grad_feature_{L-1}, shaped like the features
// Scalars travel as a tensor because MindSpore 2.7.1's AOT attribute reader returns wrong values.
// A RoI whose batch index or level is out of range yields zeros (forward) and no gradient (backward).
//
// Convention (torchvision roi_align) and the per-sample math (geometry, bilinear taps): common/roi_align_math.h,
// shared with the CUDA kernel.
//
// Parallelism (OpenMP): the forward splits RoIs across threads; the backward gives each thread a contiguous block
// of channels, so every thread writes its own channel planes and no atomics are needed. The bilinear taps of a RoI
// are separable: per bin row and per bin column they are computed once and shared by all channels.
#include <cstdint>
#include <cstring>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/roi_align_math.h"

namespace {

using namespace roi_align;  // shared math and input checks, common/roi_align_math.h

// Plain accumulation for the backward: each thread owns the channel planes it writes.
struct PlainAdd {
  void operator()(float *address, float value) const { *address += value; }
};

// Taps of every sample along one axis: index bin * grid + i.
inline void axis_taps(float start, float bin, int grid, int out, int size, std::vector<AxisTap> *taps) {
  taps->resize(static_cast<size_t>(out) * grid);
  for (int p = 0; p < out; ++p) {
    for (int i = 0; i < grid; ++i) {
      (*taps)[static_cast<size_t>(p) * grid + i] = axis_tap(sample_coord(start, bin, p, i, grid), size);
    }
  }
}

struct LevelShape {
  int64_t batch;
  int64_t channels;
  int64_t height;
  int64_t width;
};

bool read_levels(int num_levels, int first, int *ndims, int64_t **shapes, const char **dtypes,
                 std::vector<LevelShape> *levels) {
  levels->clear();
  for (int l = 0; l < num_levels; ++l) {
    const int i = first + l;
    if (ndims[i] != 4 || std::strcmp(dtypes[i], "float32") != 0) return false;
    levels->push_back({shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3]});
    if (levels->back().channels != levels->front().channels || levels->back().batch != levels->front().batch) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int RoIAlignForward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                               void *stream, void *extra) {
  (void)stream;
  (void)extra;
  const int num_levels = nparam - 5;
  if (num_levels < 1) return 1;
  std::vector<LevelShape> levels;
  if (!read_levels(num_levels, 0, ndims, shapes, dtypes, &levels)) return 1;
  if (!check_roi_inputs(num_levels, num_levels, ndims, shapes, dtypes)) return 1;
  const int out_i = num_levels + 4;
  const int64_t num_rois = shapes[num_levels][0];
  const int64_t channels = levels[0].channels;
  if (!check_forward_output(num_levels, channels, ndims, shapes)) return 1;
  const int out = static_cast<int>(shapes[out_i][2]);
  const float *rois = static_cast<const float *>(params[num_levels]);
  const int32_t *roi_levels = static_cast<const int32_t *>(params[num_levels + 1]);
  const Settings settings = read_settings(static_cast<const float *>(params[num_levels + 2]));
  float *output = static_cast<float *>(params[out_i]);
  const int64_t bins = static_cast<int64_t>(out) * out;

#pragma omp parallel
  {
    std::vector<AxisTap> taps_x;
    std::vector<AxisTap> taps_y;
#pragma omp for schedule(dynamic, 4)
    for (int64_t k = 0; k < num_rois; ++k) {
      float *roi_out = output + k * channels * bins;
      const int level = roi_levels[k];
      const float *roi = rois + k * 5;
      const int64_t batch = roi_batch_index(roi);
      if (level < 0 || level >= num_levels || batch < 0 || batch >= levels[0].batch) {
        std::memset(roi_out, 0, sizeof(float) * channels * bins);
        continue;
      }
      const LevelShape &shape = levels[level];
      const RoiGeometry g = roi_geometry(roi, settings.scales[level], out, settings.sampling_ratio, settings.aligned);
      axis_taps(g.start_x, g.bin_w, g.grid_w, out, static_cast<int>(shape.width), &taps_x);
      axis_taps(g.start_y, g.bin_h, g.grid_h, out, static_cast<int>(shape.height), &taps_y);
      const int64_t plane = shape.height * shape.width;
      const float *image = static_cast<const float *>(params[level]) + batch * channels * plane;
      for (int64_t c = 0; c < channels; ++c) {
        const float *feature = image + c * plane;
        float *channel_out = roi_out + c * bins;
        for (int ph = 0; ph < out; ++ph) {
          for (int pw = 0; pw < out; ++pw) {
            float sum = 0.0f;
            for (int iy = 0; iy < g.grid_h; ++iy) {
              const AxisTap &ty = taps_y[static_cast<size_t>(ph) * g.grid_h + iy];
              if (!tap_samples(ty)) continue;
              const float *row_low = feature + ty.low * shape.width;
              const float *row_high = feature + ty.high * shape.width;
              for (int ix = 0; ix < g.grid_w; ++ix) {
                const AxisTap &tx = taps_x[static_cast<size_t>(pw) * g.grid_w + ix];
                sum += bilinear_value(row_low, row_high, ty, tx);
              }
            }
            channel_out[ph * out + pw] = sum * g.inv_count;
          }
        }
      }
    }
  }
  return 0;
}

extern "C" int RoIAlignBackward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                void *stream, void *extra) {
  (void)stream;
  (void)extra;
  if (nparam < 6 || (nparam - 4) % 2 != 0) return 1;
  const int num_levels = (nparam - 4) / 2;
  std::vector<LevelShape> levels;
  std::vector<LevelShape> grad_levels;
  if (!read_levels(num_levels, 4, ndims, shapes, dtypes, &levels)) return 1;
  if (!read_levels(num_levels, 4 + num_levels, ndims, shapes, dtypes, &grad_levels)) return 1;
  if (!check_roi_inputs(1, num_levels, ndims, shapes, dtypes)) return 1;
  const int64_t num_rois = shapes[1][0];
  const int64_t channels = levels[0].channels;
  if (!check_backward_grad_out(channels, ndims, shapes)) return 1;
  const int out = static_cast<int>(shapes[0][2]);
  const float *grad_out = static_cast<const float *>(params[0]);
  const float *rois = static_cast<const float *>(params[1]);
  const int32_t *roi_levels = static_cast<const int32_t *>(params[2]);
  const Settings settings = read_settings(static_cast<const float *>(params[3]));
  const int64_t bins = static_cast<int64_t>(out) * out;

#pragma omp parallel
  {
    std::vector<AxisTap> taps_x;
    std::vector<AxisTap> taps_y;
    for (int l = 0; l < num_levels; ++l) {
      const int64_t plane = levels[l].height * levels[l].width;
      float *grad = static_cast<float *>(params[4 + num_levels + l]);
#pragma omp for schedule(static)
      for (int64_t bc = 0; bc < levels[l].batch * channels; ++bc) {
        std::memset(grad + bc * plane, 0, sizeof(float) * plane);
      }
    }
    int thread = 0;
    int num_threads = 1;
#ifdef _OPENMP
    thread = omp_get_thread_num();
    num_threads = omp_get_num_threads();
#endif
    const int64_t first_channel = channels * thread / num_threads;
    const int64_t last_channel = channels * (thread + 1) / num_threads;
    for (int64_t k = 0; k < num_rois && first_channel < last_channel; ++k) {
      const int level = roi_levels[k];
      const float *roi = rois + k * 5;
      const int64_t batch = roi_batch_index(roi);
      if (level < 0 || level >= num_levels || batch < 0 || batch >= levels[0].batch) continue;
      const LevelShape &shape = levels[level];
      const RoiGeometry g = roi_geometry(roi, settings.scales[level], out, settings.sampling_ratio, settings.aligned);
      axis_taps(g.start_x, g.bin_w, g.grid_w, out, static_cast<int>(shape.width), &taps_x);
      axis_taps(g.start_y, g.bin_h, g.grid_h, out, static_cast<int>(shape.height), &taps_y);
      for (int64_t c = first_channel; c < last_channel; ++c) {
        const int64_t plane = shape.height * shape.width;
        float *feature_grad = static_cast<float *>(params[4 + num_levels + level]) + (batch * channels + c) * plane;
        const float *channel_grad_out = grad_out + (k * channels + c) * bins;
        for (int ph = 0; ph < out; ++ph) {
          for (int pw = 0; pw < out; ++pw) {
            const float bin_grad = channel_grad_out[ph * out + pw] * g.inv_count;
            if (bin_grad == 0.0f) continue;
            for (int iy = 0; iy < g.grid_h; ++iy) {
              const AxisTap &ty = taps_y[static_cast<size_t>(ph) * g.grid_h + iy];
              if (!tap_samples(ty)) continue;
              float *row_low = feature_grad + ty.low * shape.width;
              float *row_high = feature_grad + ty.high * shape.width;
              const float grad_low = bin_grad * ty.weight_low;
              const float grad_high = bin_grad * ty.weight_high;
              for (int ix = 0; ix < g.grid_w; ++ix) {
                const AxisTap &tx = taps_x[static_cast<size_t>(pw) * g.grid_w + ix];
                bilinear_scatter(row_low, row_high, grad_low, grad_high, tx, PlainAdd());
              }
            }
          }
        }
      }
    }
  }
  return 0;
}
