// RoIAlign forward and backward on GPU, float32, as MindSpore AOT custom-op entry points.
//
// Same entry points, inputs, outputs and convention as cpu/roi_align.cpp (read its header comment):
//   RoIAlignForward  (feature_0 .. feature_{L-1}, rois [K,5], levels [K] int32, scalars [L+2], out_template
//                    [out, out]) -> [K, C, out, out]
//   RoIAlignBackward (grad_out, rois, levels, scalars, feature_0 .. feature_{L-1}) -> grad_feature_0 .. _{L-1}
// The scalars tensor (sampling_ratio, aligned, spatial_scale_0 .. _{L-1}) lives in device memory and is read by the
// kernels, so no host synchronisation is needed. One thread per output element (k, c, ph, pw); the backward
// scatters with atomicAdd into gradients zeroed with cudaMemsetAsync on the op's stream.
// The sampling geometry, the per-axis bilinear taps and the input checks come from common/roi_align_math.h, shared
// with the CPU kernel. The per-element work is in __host__ __device__ functions (forward_element, backward_element),
// so it can be run and checked on the host (tests/blocks/test_roi_align_cuda_host.py).
#include <cstdint>
#include <cstring>

#include <cuda_runtime.h>

#include "common/roi_align_math.h"

namespace {

using namespace roi_align;  // shared math and input checks, common/roi_align_math.h

constexpr int kMaxLevels = 8;
constexpr int kThreadsPerBlock = 256;

struct LevelTable {
  const float *features[kMaxLevels];
  float *grads[kMaxLevels];
  int height[kMaxLevels];
  int width[kMaxLevels];
};

// Decodes output element index -> (k, c, ph, pw) and checks the RoI's level and batch index.
__host__ __device__ inline bool locate(int64_t index, int channels, int out, const float *rois,
                                       const int32_t *roi_levels, int num_levels, int batch_size, int64_t *k, int *c,
                                       int *ph, int *pw, int *level) {
  *pw = static_cast<int>(index % out);
  *ph = static_cast<int>((index / out) % out);
  *c = static_cast<int>((index / out / out) % channels);
  *k = index / out / out / channels;
  *level = roi_levels[*k];
  const int batch = static_cast<int>(roi_batch_index(rois + *k * 5));
  return *level >= 0 && *level < num_levels && batch >= 0 && batch < batch_size;
}

// Value of output element `index`; `table.features` must be set.
__host__ __device__ inline float forward_element(const LevelTable &table, int num_levels, const float *rois,
                                                 const int32_t *roi_levels, const float *scalars, int batch_size,
                                                 int channels, int out, int64_t index) {
  int64_t k;
  int c, ph, pw, level;
  if (!locate(index, channels, out, rois, roi_levels, num_levels, batch_size, &k, &c, &ph, &pw, &level)) return 0.0f;
  const Settings settings = read_settings(scalars);
  const RoiGeometry g =
      roi_geometry(rois + k * 5, settings.scales[level], out, settings.sampling_ratio, settings.aligned);
  const int height = table.height[level];
  const int width = table.width[level];
  const float *feature =
      table.features[level] + (static_cast<int64_t>(g.batch) * channels + c) * height * static_cast<int64_t>(width);
  float sum = 0.0f;
  for (int iy = 0; iy < g.grid_h; ++iy) {
    const AxisTap ty = axis_tap(sample_coord(g.start_y, g.bin_h, ph, iy, g.grid_h), height);
    if (!tap_samples(ty)) continue;
    const float *row_low = feature + static_cast<int64_t>(ty.low) * width;
    const float *row_high = feature + static_cast<int64_t>(ty.high) * width;
    for (int ix = 0; ix < g.grid_w; ++ix) {
      const AxisTap tx = axis_tap(sample_coord(g.start_x, g.bin_w, pw, ix, g.grid_w), width);
      sum += bilinear_value(row_low, row_high, ty, tx);
    }
  }
  return sum * g.inv_count;
}

// Scatters the gradient of output element `index` into `table.grads` through `add(address, value)`.
template <typename Add>
__host__ __device__ inline void backward_element(const LevelTable &table, int num_levels, const float *grad_out,
                                                 const float *rois, const int32_t *roi_levels, const float *scalars,
                                                 int batch_size, int channels, int out, int64_t index, Add add) {
  int64_t k;
  int c, ph, pw, level;
  if (!locate(index, channels, out, rois, roi_levels, num_levels, batch_size, &k, &c, &ph, &pw, &level)) return;
  const Settings settings = read_settings(scalars);
  const RoiGeometry g =
      roi_geometry(rois + k * 5, settings.scales[level], out, settings.sampling_ratio, settings.aligned);
  const float bin_grad = grad_out[index] * g.inv_count;
  if (bin_grad == 0.0f) return;
  const int height = table.height[level];
  const int width = table.width[level];
  float *feature_grad =
      table.grads[level] + (static_cast<int64_t>(g.batch) * channels + c) * height * static_cast<int64_t>(width);
  for (int iy = 0; iy < g.grid_h; ++iy) {
    const AxisTap ty = axis_tap(sample_coord(g.start_y, g.bin_h, ph, iy, g.grid_h), height);
    if (!tap_samples(ty)) continue;
    float *row_low = feature_grad + static_cast<int64_t>(ty.low) * width;
    float *row_high = feature_grad + static_cast<int64_t>(ty.high) * width;
    const float grad_low = bin_grad * ty.weight_low;
    const float grad_high = bin_grad * ty.weight_high;
    for (int ix = 0; ix < g.grid_w; ++ix) {
      const AxisTap tx = axis_tap(sample_coord(g.start_x, g.bin_w, pw, ix, g.grid_w), width);
      bilinear_scatter(row_low, row_high, grad_low, grad_high, tx, add);
    }
  }
}

struct AtomicAdd {
  __device__ void operator()(float *address, float value) const { atomicAdd(address, value); }
};

__global__ void roi_align_forward_kernel(LevelTable table, int num_levels, const float *rois,
                                         const int32_t *roi_levels, const float *scalars, int batch_size,
                                         int channels, int out, int64_t total, float *output) {
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    output[index] =
        forward_element(table, num_levels, rois, roi_levels, scalars, batch_size, channels, out, index);
  }
}

__global__ void roi_align_backward_kernel(LevelTable table, int num_levels, const float *grad_out, const float *rois,
                                          const int32_t *roi_levels, const float *scalars, int batch_size,
                                          int channels, int out, int64_t total) {
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total;
       index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    backward_element(table, num_levels, grad_out, rois, roi_levels, scalars, batch_size, channels, out, index,
                     AtomicAdd());
  }
}

// Reads L feature shapes starting at params index `first`; all levels must share batch and channels.
bool read_levels(int num_levels, int first, int *ndims, int64_t **shapes, const char **dtypes, LevelTable *table,
                 int64_t *batch_size, int64_t *channels) {
  for (int l = 0; l < num_levels; ++l) {
    const int i = first + l;
    if (ndims[i] != 4 || std::strcmp(dtypes[i], "float32") != 0) return false;
    if (l == 0) {
      *batch_size = shapes[i][0];
      *channels = shapes[i][1];
    } else if (shapes[i][0] != *batch_size || shapes[i][1] != *channels) {
      return false;
    }
    table->height[l] = static_cast<int>(shapes[i][2]);
    table->width[l] = static_cast<int>(shapes[i][3]);
  }
  return true;
}

int launch_blocks(int64_t total) {
  const int64_t blocks = (total + kThreadsPerBlock - 1) / kThreadsPerBlock;
  return static_cast<int>(blocks < 65535 * 8 ? (blocks > 0 ? blocks : 1) : 65535 * 8);
}

}  // namespace

extern "C" int RoIAlignForward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                               void *stream, void *extra) {
  (void)extra;
  const int num_levels = nparam - 5;
  if (num_levels < 1 || num_levels > kMaxLevels) return 1;
  LevelTable table;
  int64_t batch_size = 0;
  int64_t channels = 0;
  if (!read_levels(num_levels, 0, ndims, shapes, dtypes, &table, &batch_size, &channels)) return 1;
  if (!check_roi_inputs(num_levels, num_levels, ndims, shapes, dtypes)) return 1;
  const int out_i = num_levels + 4;
  const int64_t num_rois = shapes[num_levels][0];
  if (!check_forward_output(num_levels, channels, ndims, shapes)) return 1;
  for (int l = 0; l < num_levels; ++l) table.features[l] = static_cast<const float *>(params[l]);
  const int out = static_cast<int>(shapes[out_i][2]);
  const int64_t total = num_rois * channels * out * out;
  if (total == 0) return 0;
  cudaStream_t cuda_stream = static_cast<cudaStream_t>(stream);
  roi_align_forward_kernel<<<launch_blocks(total), kThreadsPerBlock, 0, cuda_stream>>>(
      table, num_levels, static_cast<const float *>(params[num_levels]),
      static_cast<const int32_t *>(params[num_levels + 1]), static_cast<const float *>(params[num_levels + 2]),
      static_cast<int>(batch_size), static_cast<int>(channels), out, total, static_cast<float *>(params[out_i]));
  return cudaGetLastError() == cudaSuccess ? 0 : 1;
}

extern "C" int RoIAlignBackward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                void *stream, void *extra) {
  (void)extra;
  if (nparam < 6 || (nparam - 4) % 2 != 0) return 1;
  const int num_levels = (nparam - 4) / 2;
  if (num_levels > kMaxLevels) return 1;
  LevelTable table;
  int64_t batch_size = 0;
  int64_t channels = 0;
  int64_t grad_batch_size = 0;
  int64_t grad_channels = 0;
  if (!read_levels(num_levels, 4, ndims, shapes, dtypes, &table, &batch_size, &channels)) return 1;
  if (!read_levels(num_levels, 4 + num_levels, ndims, shapes, dtypes, &table, &grad_batch_size, &grad_channels) ||
      grad_batch_size != batch_size || grad_channels != channels) {
    return 1;
  }
  if (!check_roi_inputs(1, num_levels, ndims, shapes, dtypes)) return 1;
  const int64_t num_rois = shapes[1][0];
  if (!check_backward_grad_out(channels, ndims, shapes)) return 1;
  cudaStream_t cuda_stream = static_cast<cudaStream_t>(stream);
  for (int l = 0; l < num_levels; ++l) {
    table.grads[l] = static_cast<float *>(params[4 + num_levels + l]);
    const size_t bytes = sizeof(float) * batch_size * channels * table.height[l] * table.width[l];
    if (cudaMemsetAsync(table.grads[l], 0, bytes, cuda_stream) != cudaSuccess) return 1;
  }
  const int out = static_cast<int>(shapes[0][2]);
  const int64_t total = num_rois * channels * out * out;
  if (total == 0) return 0;
  roi_align_backward_kernel<<<launch_blocks(total), kThreadsPerBlock, 0, cuda_stream>>>(
      table, num_levels, static_cast<const float *>(params[0]), static_cast<const float *>(params[1]),
      static_cast<const int32_t *>(params[2]), static_cast<const float *>(params[3]), static_cast<int>(batch_size),
      static_cast<int>(channels), out, total);
  return cudaGetLastError() == cudaSuccess ? 0 : 1;
}
