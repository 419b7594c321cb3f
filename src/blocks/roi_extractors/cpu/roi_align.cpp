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
// Convention (torchvision roi_align): aligned = 0: box [x1 * s, x2 * s], size max(size, 1); aligned = 1: both ends
// shifted by -0.5, no minimum size. Bin (ph, pw) averages grid_h x grid_w bilinear samples, grid = sampling_ratio
// or ceil(roi_size / out) when sampling_ratio == 0. A sample beyond one pixel outside the map counts as zero.
//
// Parallelism (OpenMP): the forward splits RoIs across threads; the backward gives each thread a contiguous block
// of channels, so every thread writes its own channel planes and no atomics are needed. The bilinear taps of a RoI are separable: per bin row
// and per bin column they are computed once and shared by all channels.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

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

inline RoiGeometry roi_geometry(const float *roi, float scale, int out, int sampling_ratio, bool aligned) {
  RoiGeometry geometry;
  geometry.batch = static_cast<int>(std::lrint(roi[0]));
  const float offset = aligned ? 0.5f : 0.0f;
  geometry.start_x = roi[1] * scale - offset;
  geometry.start_y = roi[2] * scale - offset;
  float roi_w = roi[3] * scale - offset - geometry.start_x;
  float roi_h = roi[4] * scale - offset - geometry.start_y;
  if (!aligned) {
    roi_w = std::fmax(roi_w, 1.0f);
    roi_h = std::fmax(roi_h, 1.0f);
  }
  geometry.bin_w = roi_w / static_cast<float>(out);
  geometry.bin_h = roi_h / static_cast<float>(out);
  geometry.grid_w = sampling_ratio > 0 ? sampling_ratio : static_cast<int>(std::ceil(roi_w / static_cast<float>(out)));
  geometry.grid_h = sampling_ratio > 0 ? sampling_ratio : static_cast<int>(std::ceil(roi_h / static_cast<float>(out)));
  if (geometry.grid_w < 0) geometry.grid_w = 0;
  if (geometry.grid_h < 0) geometry.grid_h = 0;
  const int count = geometry.grid_w * geometry.grid_h;
  geometry.inv_count = 1.0f / static_cast<float>(count > 1 ? count : 1);
  return geometry;
}

inline AxisTap axis_tap(float coord, int size) {
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

// Taps of every sample along one axis: index bin * grid + i.
inline void axis_taps(float start, float bin, int grid, int out, int size, std::vector<AxisTap> *taps) {
  taps->resize(static_cast<size_t>(out) * grid);
  for (int p = 0; p < out; ++p) {
    for (int i = 0; i < grid; ++i) {
      const float coord = start + p * bin + (i + 0.5f) * bin / static_cast<float>(grid);
      (*taps)[static_cast<size_t>(p) * grid + i] = axis_tap(coord, size);
    }
  }
}

struct LevelShape {
  int64_t batch;
  int64_t channels;
  int64_t height;
  int64_t width;
};

struct Settings {
  int sampling_ratio;
  bool aligned;
  const float *scales;
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

bool check_roi_inputs(int rois_i, int num_levels, int *ndims, int64_t **shapes, const char **dtypes) {
  const int levels_i = rois_i + 1;
  const int scalars_i = rois_i + 2;
  return ndims[rois_i] == 2 && shapes[rois_i][1] == 5 && std::strcmp(dtypes[rois_i], "float32") == 0 &&
         ndims[levels_i] == 1 && shapes[levels_i][0] == shapes[rois_i][0] &&
         std::strcmp(dtypes[levels_i], "int32") == 0 && ndims[scalars_i] == 1 &&
         shapes[scalars_i][0] == num_levels + 2 && std::strcmp(dtypes[scalars_i], "float32") == 0;
}

Settings read_settings(const float *scalars) {
  return Settings{static_cast<int>(std::lrint(scalars[0])), scalars[1] > 0.5f, scalars + 2};
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
  const int template_i = num_levels + 3;
  const int64_t num_rois = shapes[num_levels][0];
  const int64_t channels = levels[0].channels;
  if (ndims[out_i] != 4 || shapes[out_i][0] != num_rois || shapes[out_i][1] != channels ||
      shapes[out_i][2] != shapes[out_i][3] || ndims[template_i] != 2 ||
      shapes[template_i][0] != shapes[out_i][2] || shapes[template_i][1] != shapes[out_i][3]) {
    return 1;
  }
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
      const int64_t batch = static_cast<int64_t>(std::lrint(roi[0]));
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
              if (ty.weight_low == 0.0f && ty.weight_high == 0.0f) continue;
              const float *row_low = feature + ty.low * shape.width;
              const float *row_high = feature + ty.high * shape.width;
              for (int ix = 0; ix < g.grid_w; ++ix) {
                const AxisTap &tx = taps_x[static_cast<size_t>(pw) * g.grid_w + ix];
                sum += ty.weight_low * (tx.weight_low * row_low[tx.low] + tx.weight_high * row_low[tx.high]) +
                       ty.weight_high * (tx.weight_low * row_high[tx.low] + tx.weight_high * row_high[tx.high]);
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
  if (ndims[0] != 4 || shapes[0][0] != num_rois || shapes[0][1] != channels || shapes[0][2] != shapes[0][3]) {
    return 1;
  }
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
      const int64_t batch = static_cast<int64_t>(std::lrint(roi[0]));
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
              if (ty.weight_low == 0.0f && ty.weight_high == 0.0f) continue;
              float *row_low = feature_grad + ty.low * shape.width;
              float *row_high = feature_grad + ty.high * shape.width;
              const float grad_low = bin_grad * ty.weight_low;
              const float grad_high = bin_grad * ty.weight_high;
              for (int ix = 0; ix < g.grid_w; ++ix) {
                const AxisTap &tx = taps_x[static_cast<size_t>(pw) * g.grid_w + ix];
                row_low[tx.low] += grad_low * tx.weight_low;
                row_low[tx.high] += grad_low * tx.weight_high;
                row_high[tx.low] += grad_high * tx.weight_low;
                row_high[tx.high] += grad_high * tx.weight_high;
              }
            }
          }
        }
      }
    }
  }
  return 0;
}
