#!/usr/bin/env bash
# Data-parallel training on DEVICE_NUM devices: GPUs through mpirun (NCCL); with DEVICE_TARGET=CPU, processes
# through msrun (plain mpirun does not initialise MindSpore's CPU collectives). Logs go to ./LOG/ (current folder):
# LOG/train.log (all ranks; rank 0 also writes the experiment's train.log) and the launcher's per-rank files.
# Arguments after the documented ones are config overrides (--key value).
set -euo pipefail

usage() {
    cat <<EOF
Usage: bash scripts/run_distribute_train_gpu.sh [CONFIG_PATH] [DEVICE_NUM] [TRAIN_DATA] [VAL_DATA] [TRAIN_OUT] [BRIEF] (OPTIONAL)[PRETRAINED_PATH] [--key value ...]
  CONFIG_PATH      config YAML
  DEVICE_NUM       number of devices (processes), >= 1
  TRAIN_DATA       train subset folder
  VAL_DATA         validation subset folder
  TRAIN_OUT        folder holding the experiment folders
  BRIEF            short experiment name
  PRETRAINED_PATH  backbone-only or full-detector checkpoint (optional)
Environment: DEVICE_TARGET (GPU default, or CPU), MASTER_PORT (msrun, default 8118), MPIRUN (GPU launcher, default
mpirun), PYTHON (default python).
EOF
}

if [ $# -lt 6 ] || ! [[ "$2" =~ ^[1-9][0-9]*$ ]]; then
    usage >&2
    exit 1
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
config="$(realpath -m "$1")"; device_num="$2"; train_data="$(realpath -m "$3")"; val_data="$(realpath -m "$4")"
train_out="$(realpath -m "$5")"; brief="$6"
shift 6
pretrained=()
if [ $# -gt 0 ] && [[ "$1" != --* ]]; then
    pretrained=(--pre_trained "$(realpath -m "$1")")
    shift
fi
for path in "$config" "$train_data" "$val_data"; do
    [ -e "$path" ] || { echo "run_distribute_train_gpu.sh: $path does not exist" >&2; usage >&2; exit 1; }
done

target="${DEVICE_TARGET:-GPU}"
mpirun_bin="${MPIRUN:-mpirun}"
if [ "$target" != "CPU" ]; then
    if ! command -v "$mpirun_bin" >/dev/null 2>&1; then
        echo "run_distribute_train_gpu.sh: $mpirun_bin not found: install OpenMPI (bash scripts/install_system_deps.sh)," \
             "or set MPIRUN, or train on CPU processes with DEVICE_TARGET=CPU" >&2
        exit 1
    fi
    linker_cache="$( (ldconfig -p || /sbin/ldconfig -p) 2>/dev/null || true)"
    found=""
    grep -q 'libnccl\.so' <<<"$linker_cache" && found=yes
    IFS=':' read -r -a library_dirs <<<"${LD_LIBRARY_PATH:-}"
    for dir in "${library_dirs[@]}"; do
        compgen -G "$dir/libnccl.so*" >/dev/null && found=yes
    done
    if [ -z "$found" ]; then
        echo "run_distribute_train_gpu.sh: NCCL (libnccl.so) not found in the linker cache or LD_LIBRARY_PATH: install" \
             "the NCCL build of your CUDA version, or train on CPU processes with DEVICE_TARGET=CPU" >&2
        exit 1
    fi
fi

log_dir="$(pwd)/LOG"
mkdir -p "$log_dir"
python_bin="${PYTHON:-python}"
args=(train.py --config_path "$config" --train_dataset "$train_data" --val_dataset "$val_data"
      --train_outputs "$train_out" --brief "$brief" --device_target "$target" --run_distribute 1
      --device_num "$device_num" "${pretrained[@]}" "$@")
echo "Training log: $log_dir/train.log"
cd "$root"
if [ "$target" = "CPU" ]; then
    msrun --worker_num="$device_num" --local_worker_num="$device_num" --master_port="${MASTER_PORT:-8118}" \
        --log_dir="$log_dir/msrun" --join=True "$python_bin" "${args[@]}" 2>&1 | tee "$log_dir/train.log"
else
    "$mpirun_bin" -n "$device_num" --allow-run-as-root --output-filename "$log_dir/mpirun" --merge-stderr-to-stdout \
        "$python_bin" "${args[@]}" 2>&1 | tee "$log_dir/train.log"
fi
