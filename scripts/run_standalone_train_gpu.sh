#!/usr/bin/env bash
# Standalone (one device) training. The log goes to ./LOG/train.log (current folder) and to the console; the
# experiment (checkpoints, metrics, config) to TRAIN_OUT/<YYMMDD>_MSRCNN_<BRIEF>_...
# DEVICE_TARGET=CPU runs on CPU. Arguments after the documented ones are config overrides (--key value).
set -euo pipefail

usage() {
    cat <<EOF
Usage: bash scripts/run_standalone_train_gpu.sh [CONFIG_PATH] [TRAIN_DATA] [VAL_DATA] [TRAIN_OUT] [BRIEF] (OPTIONAL)[PRETRAINED_PATH] [--key value ...]
  CONFIG_PATH      config YAML
  TRAIN_DATA       train subset folder (labels.json + data/, or COCO layout)
  VAL_DATA         validation subset folder
  TRAIN_OUT        folder holding the experiment folders
  BRIEF            short experiment name (part of the experiment folder name)
  PRETRAINED_PATH  backbone-only or full-detector checkpoint (optional)
Environment: DEVICE_TARGET (GPU default, or CPU), DEVICE_ID (default 0), PYTHON (default python).
EOF
}

if [ $# -lt 5 ]; then
    usage >&2
    exit 1
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
config="$(realpath -m "$1")"; train_data="$(realpath -m "$2")"; val_data="$(realpath -m "$3")"
train_out="$(realpath -m "$4")"; brief="$5"
shift 5
pretrained=()
if [ $# -gt 0 ] && [[ "$1" != --* ]]; then
    pretrained=(--pre_trained "$(realpath -m "$1")")
    shift
fi
for path in "$config" "$train_data" "$val_data"; do
    [ -e "$path" ] || { echo "run_standalone_train_gpu.sh: $path does not exist" >&2; usage >&2; exit 1; }
done

log_dir="$(pwd)/LOG"
mkdir -p "$log_dir"
echo "Training log: $log_dir/train.log"
cd "$root"
"${PYTHON:-python}" train.py --config_path "$config" --train_dataset "$train_data" --val_dataset "$val_data" \
    --train_outputs "$train_out" --brief "$brief" --device_target "${DEVICE_TARGET:-GPU}" \
    --device_id "${DEVICE_ID:-0}" "${pretrained[@]}" "$@" 2>&1 | tee "$log_dir/train.log"
