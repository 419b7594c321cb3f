#!/usr/bin/env bash
# Builds the custom-op kernels:
#   src/blocks/roi_extractors/lib/libroi_align_cpu.so   from roi_extractors/cpu/roi_align.cpp            (g++, required)
#   src/blocks/roi_extractors/lib/libroi_align_cuda.so  from roi_extractors/cuda/roi_align_cuda_kernel.cu (nvcc, optional)
#   src/blocks/nms/lib/libsorted_nms_cpu.so             from nms/cpu/sorted_nms.cpp                       (g++, required)
#   src/blocks/assigners_samplers/lib/libmax_iou_assign_cpu.so from assigners_samplers/cpu/max_iou_assign.cpp (g++, required)
#   src/blocks/conv/lib/libdnnl_conv2d_cpu.so           from conv/cpu/dnnl_conv2d.cpp (g++ with the oneDNN headers of
#                                                        Debian's libdnnl-dev, linked to the oneDNN MindSpore bundles;
#                                                        skipped without the headers: convolutions then run MindSpore's op)
# The RoIAlign kernels include src/blocks/roi_extractors/common/roi_align_math.h (shared RoIAlign math).
# A library is rebuilt only when its source or the shared header is newer (or --force is given). Works from any
# directory.
set -euo pipefail

usage() {
    cat <<EOF
Usage: bash scripts/build_custom.sh [--force] [--help]
Builds the RoIAlign, NMS, max-IoU assignment and convolution custom-op libraries (src/blocks/*/lib/).
  --force   rebuild even when the libraries are up to date
Environment: CXX (default g++), NVCC (default nvcc), CUDA_ARCHS (default "80 90"),
             OPENMP (default 1; 0 builds the CPU kernel single-threaded),
             PYTHON (default python; the interpreter with MindSpore, for the convolution library).
EOF
}

force=0
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "build_custom.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
    esac
done

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
roi_dir="$repo_root/src/blocks/roi_extractors"
lib_dir="$roi_dir/lib"
cpu_src="$roi_dir/cpu/roi_align.cpp"
cuda_src="$roi_dir/cuda/roi_align_cuda_kernel.cu"
shared_header="$roi_dir/common/roi_align_math.h"
cpu_lib="$lib_dir/libroi_align_cpu.so"
cuda_lib="$lib_dir/libroi_align_cuda.so"
nms_dir="$repo_root/src/blocks/nms"
nms_src="$nms_dir/cpu/sorted_nms.cpp"
nms_lib="$nms_dir/lib/libsorted_nms_cpu.so"
assign_dir="$repo_root/src/blocks/assigners_samplers"
assign_src="$assign_dir/cpu/max_iou_assign.cpp"
assign_lib="$assign_dir/lib/libmax_iou_assign_cpu.so"
conv_dir="$repo_root/src/blocks/conv"
conv_src="$conv_dir/cpu/dnnl_conv2d.cpp"
conv_lib="$conv_dir/lib/libdnnl_conv2d_cpu.so"
mkdir -p "$lib_dir" "$nms_dir/lib" "$assign_dir/lib" "$conv_dir/lib"

needs_build() {  # needs_build <library> <source>
    [[ "$force" == 1 || ! -f "$1" || "$2" -nt "$1" || "$shared_header" -nt "$1" || "${BASH_SOURCE[0]}" -nt "$1" ]]
}

cxx="${CXX:-g++}"
if ! command -v "$cxx" >/dev/null 2>&1; then
    echo "build_custom.sh: C++ compiler '$cxx' not found; install g++ (or set CXX) to build $cpu_lib" >&2
    exit 1
fi
openmp_flag=()
if [[ "${OPENMP:-1}" == 1 ]]; then
    openmp_flag=(-fopenmp)
fi
if needs_build "$cpu_lib" "$cpu_src"; then
    echo "building $cpu_lib"
    "$cxx" -O3 -std=c++14 -Wall -Wextra -shared -fPIC "${openmp_flag[@]}" -I "$roi_dir" -o "$cpu_lib.tmp" "$cpu_src"
    mv "$cpu_lib.tmp" "$cpu_lib"
else
    echo "$cpu_lib is up to date"
fi
# build_exact_cpu_lib <library> <source>: a kernel that must round as MindSpore's element-wise ops do (no FMA
# contraction).
build_exact_cpu_lib() {
    if needs_build "$1" "$2"; then
        echo "building $1"
        "$cxx" -O3 -ffp-contract=off -std=c++14 -Wall -Wextra -shared -fPIC "${openmp_flag[@]}" -o "$1.tmp" "$2"
        mv "$1.tmp" "$1"
    else
        echo "$1 is up to date"
    fi
}
build_exact_cpu_lib "$nms_lib" "$nms_src"
build_exact_cpu_lib "$assign_lib" "$assign_src"

# The convolution kernels call the oneDNN that MindSpore ships (mindspore/lib/libdnnl.so.2), with the headers of
# Debian's libdnnl-dev (the same 2.x API).
if [[ ! -f /usr/include/oneapi/dnnl/dnnl.hpp ]]; then
    echo "oneDNN headers not found (apt-get install libdnnl-dev): skipping $conv_lib; convolutions run MindSpore's op"
elif ! ms_lib_dir="$("${PYTHON:-python}" -c 'import mindspore, os; print(os.path.join(os.path.dirname(mindspore.__file__), "lib"))' 2>/dev/null)" \
        || [[ ! -f "$ms_lib_dir/libdnnl.so.2" ]]; then
    echo "MindSpore's libdnnl.so.2 not found with ${PYTHON:-python}: skipping $conv_lib; convolutions run MindSpore's op"
elif needs_build "$conv_lib" "$conv_src"; then
    echo "building $conv_lib"
    "$cxx" -O2 -std=c++14 -Wall -Wextra -shared -fPIC -pthread -o "$conv_lib.tmp" "$conv_src" \
        -L "$ms_lib_dir" -l:libdnnl.so.2 -Wl,-rpath,"$ms_lib_dir" -Wl,--no-undefined
    mv "$conv_lib.tmp" "$conv_lib"
else
    echo "$conv_lib is up to date"
fi

nvcc_bin="${NVCC:-nvcc}"
if ! command -v "$nvcc_bin" >/dev/null 2>&1 && [[ -x /usr/local/cuda/bin/nvcc ]]; then
    nvcc_bin=/usr/local/cuda/bin/nvcc
fi
if ! command -v "$nvcc_bin" >/dev/null 2>&1; then
    echo "nvcc not found: skipping CUDA build ($cuda_lib); impl 'custom' on GPU needs it"
    exit 0
fi
if needs_build "$cuda_lib" "$cuda_src"; then
    echo "building $cuda_lib"
    gencode=()
    for arch in ${CUDA_ARCHS:-80 90}; do
        gencode+=(-gencode "arch=compute_${arch},code=sm_${arch}")
    done
    "$nvcc_bin" --shared -Xcompiler -fPIC -O3 "${gencode[@]}" -I "$roi_dir" -o "$cuda_lib.tmp" "$cuda_src"
    mv "$cuda_lib.tmp" "$cuda_lib"
else
    echo "$cuda_lib is up to date"
fi
