#!/usr/bin/env bash
# Evaluate a checkpoint (COCO bbox/segm mAP, per-category AP, mask-scoring report). Log: ./LOG/eval.log.
# When PREDICTION_PATH exists it is evaluated without running the model; otherwise the predictions are saved there.
# DEVICE_TARGET=CPU runs on CPU. Arguments after the documented ones are config overrides (--key value).
set -euo pipefail

usage() {
    cat <<EOF
Usage: bash scripts/run_eval_gpu.sh [CONFIG_PATH] [VAL_DATA] [CHECKPOINT_PATH] (OPTIONAL)[PREDICTION_PATH] [--key value ...]
  CONFIG_PATH      config YAML
  VAL_DATA         validation subset folder
  CHECKPOINT_PATH  checkpoint to evaluate
  PREDICTION_PATH  predictions JSON to write (or to evaluate when it exists)
Environment: DEVICE_TARGET (GPU default, or CPU), DEVICE_ID (default 0), PYTHON (default python).
EOF
}

if [ $# -lt 3 ]; then
    usage >&2
    exit 1
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
config="$(realpath -m "$1")"; val_data="$(realpath -m "$2")"; checkpoint="$(realpath -m "$3")"
shift 3
prediction=()
if [ $# -gt 0 ] && [[ "$1" != --* ]]; then
    prediction=(--prediction_path "$(realpath -m "$1")")
    shift
fi
for path in "$config" "$val_data"; do
    [ -e "$path" ] || { echo "run_eval_gpu.sh: $path does not exist" >&2; usage >&2; exit 1; }
done

log_dir="$(pwd)/LOG"
mkdir -p "$log_dir"
echo "Evaluation log: $log_dir/eval.log"
cd "$root"
"${PYTHON:-python}" eval.py --config_path "$config" --val_dataset "$val_data" --checkpoint_path "$checkpoint" \
    --device_target "${DEVICE_TARGET:-GPU}" --device_id "${DEVICE_ID:-0}" "${prediction[@]}" "$@" 2>&1 \
    | tee "$log_dir/eval.log"
