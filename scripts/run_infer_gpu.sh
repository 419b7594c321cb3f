#!/usr/bin/env bash
# Predict on an image or a folder of images; writes the model zoo JSON to PRED_OUTPUT. Log: ./LOG/infer.log.
# DEVICE_TARGET=CPU runs on CPU. Arguments after the documented ones are config overrides (e.g. --visualize DIR).
set -euo pipefail

usage() {
    cat <<EOF
Usage: bash scripts/run_infer_gpu.sh [CONFIG_PATH] [CHECKPOINT_PATH] [PRED_INPUT] [PRED_OUTPUT] [--key value ...]
  CONFIG_PATH      config YAML
  CHECKPOINT_PATH  checkpoint to use
  PRED_INPUT       an image or a folder of images (.jpg .jpeg .png .bmp)
  PRED_OUTPUT      output JSON file
Environment: DEVICE_TARGET (GPU default, or CPU), DEVICE_ID (default 0), PYTHON (default python).
EOF
}

if [ $# -lt 4 ]; then
    usage >&2
    exit 1
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
config="$(realpath -m "$1")"; checkpoint="$(realpath -m "$2")"; pred_input="$(realpath -m "$3")"
pred_output="$(realpath -m "$4")"
shift 4
for path in "$config" "$checkpoint" "$pred_input"; do
    [ -e "$path" ] || { echo "run_infer_gpu.sh: $path does not exist" >&2; usage >&2; exit 1; }
done
extra=()
while [ $# -gt 0 ]; do
    if [ "$1" = "--visualize" ] && [ $# -gt 1 ]; then
        extra+=(--visualize "$(realpath -m "$2")")
        shift 2
    else
        extra+=("$1")
        shift
    fi
done

log_dir="$(pwd)/LOG"
mkdir -p "$log_dir"
echo "Inference log: $log_dir/infer.log"
cd "$root"
"${PYTHON:-python}" infer.py --config_path "$config" --checkpoint_path "$checkpoint" --pred_input "$pred_input" \
    --pred_output "$pred_output" --device_target "${DEVICE_TARGET:-GPU}" --device_id "${DEVICE_ID:-0}" \
    "${extra[@]}" 2>&1 | tee "$log_dir/infer.log"
