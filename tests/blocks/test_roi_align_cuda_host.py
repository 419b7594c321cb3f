"""The CUDA kernel's per-element functions (forward_element, backward_element) run on the host against the NumPy
reference: the CUDA source is compiled with nvcc into a host harness, so its indexing is checked without a GPU."""
import ctypes
import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

_SPEC = importlib.util.spec_from_file_location("roi_align_reference", Path(__file__).with_name("test_roi_align.py"))
REFERENCE = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(REFERENCE)
ROI_EXTRACTORS_DIR = Path(__file__).resolve().parents[2] / "src/blocks/roi_extractors"
CUDA_SOURCE = ROI_EXTRACTORS_DIR / "cuda/roi_align_cuda_kernel.cu"

HARNESS = r"""
#include "{source}"

struct HostAdd {{
  __host__ __device__ void operator()(float *address, float value) const {{ *address += value; }}
}};

static LevelTable host_table(int num_levels, float **features, float **grads, const int *heights, const int *widths) {{
  LevelTable table;
  for (int l = 0; l < num_levels; ++l) {{
    table.features[l] = features[l];
    table.grads[l] = grads[l];
    table.height[l] = heights[l];
    table.width[l] = widths[l];
  }}
  return table;
}}

extern "C" void HostForward(int num_levels, float **features, const int *heights, const int *widths,
                            const float *rois, const int32_t *levels, const float *scalars, int batch, int channels,
                            int out, int64_t num_rois, float *output) {{
  const LevelTable table = host_table(num_levels, features, features, heights, widths);
  for (int64_t index = 0; index < num_rois * channels * out * out; ++index) {{
    output[index] = forward_element(table, num_levels, rois, levels, scalars, batch, channels, out, index);
  }}
}}

extern "C" void HostBackward(int num_levels, float **grads, const int *heights, const int *widths,
                             const float *grad_out, const float *rois, const int32_t *levels, const float *scalars,
                             int batch, int channels, int out, int64_t num_rois) {{
  const LevelTable table = host_table(num_levels, grads, grads, heights, widths);
  for (int64_t index = 0; index < num_rois * channels * out * out; ++index) {{
    backward_element(table, num_levels, grad_out, rois, levels, scalars, batch, channels, out, index, HostAdd());
  }}
}}
"""


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists() else None)
    if nvcc is None:
        pytest.skip("nvcc not available")
    folder = tmp_path_factory.mktemp("cuda_host")
    (folder / "harness.cu").write_text(HARNESS.format(source=CUDA_SOURCE))
    library = folder / "harness.so"
    subprocess.run([nvcc, "--shared", "-Xcompiler", "-fPIC", "-O1", "-gencode", "arch=compute_80,code=sm_80",
                    "-I", str(ROI_EXTRACTORS_DIR), "-o", str(library), str(folder / "harness.cu")], check=True)
    return ctypes.CDLL(str(library))


def float_pointers(arrays):
    return (ctypes.POINTER(ctypes.c_float) * len(arrays))(
        *[array.ctypes.data_as(ctypes.POINTER(ctypes.c_float)) for array in arrays])


def pointer(array):
    return array.ctypes.data_as(ctypes.c_void_p)


@pytest.mark.parametrize("aligned,sampling_ratio", [(False, 0), (True, 2)])
def test_cuda_element_functions_match_reference(harness, aligned, sampling_ratio):
    rng = np.random.default_rng(11)
    strides = (4, 8)
    levels = [rng.standard_normal((2, 3, REFERENCE.IMAGE_H // s, REFERENCE.IMAGE_W // s)).astype(np.float32)
              for s in strides]
    rois = np.ascontiguousarray(REFERENCE.all_rois())
    roi_levels = (np.arange(len(rois)) % 2).astype(np.int32)
    roi_levels[-1] = 7  # out of range: zero output, no gradient
    scalars = np.array([sampling_ratio, float(aligned), *[1.0 / s for s in strides]], np.float32)
    heights = np.array([level.shape[2] for level in levels], np.int32)
    widths = np.array([level.shape[3] for level in levels], np.int32)
    out = 3
    output = np.zeros((len(rois), 3, out, out), np.float32)
    harness.HostForward(2, float_pointers(levels), pointer(heights), pointer(widths), pointer(rois),
                        pointer(roi_levels), pointer(scalars), 2, 3, out, ctypes.c_int64(len(rois)), pointer(output))
    grad_out = rng.standard_normal(output.shape).astype(np.float32)
    grads = [np.zeros_like(level) for level in levels]
    harness.HostBackward(2, float_pointers(grads), pointer(heights), pointer(widths), pointer(grad_out),
                         pointer(rois), pointer(roi_levels), pointer(scalars), 2, 3, out, ctypes.c_int64(len(rois)))
    assert np.abs(output[-1]).max() == 0.0
    for level, stride in enumerate(strides):
        selected = roi_levels == level
        np.testing.assert_allclose(output[selected], REFERENCE.reference_forward(
            levels[level], rois[selected], out, 1.0 / stride, sampling_ratio, aligned), atol=2e-5)
        np.testing.assert_allclose(grads[level], REFERENCE.reference_backward(
            levels[level].shape, rois[selected], grad_out[selected], out, 1.0 / stride, sampling_ratio, aligned),
                                   atol=5e-5)
