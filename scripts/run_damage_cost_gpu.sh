#!/usr/bin/env bash
# Repair-cost estimate of the damages on an image or a folder of images: report.json, report.csv and one
# <image>_cost.png per image in PRED_OUTPUT. Log: ./LOG/damage_cost.log. DEVICE_TARGET=CPU runs on CPU.
# A joint model (parts and severities in one coco_classes): the 5-argument form, or the same config and checkpoint
# given twice (the model then runs once). Arguments after the documented ones go to the estimator (--score-thr X).
set -euo pipefail

usage() {
    cat <<EOF
Usage: bash scripts/run_damage_cost_gpu.sh [PARTS_CONFIG] [PARTS_CKPT] [DAMAGE_CONFIG] [DAMAGE_CKPT] [PRICE_MODEL] [PRED_INPUT] [PRED_OUTPUT] [--score-thr X]
       bash scripts/run_damage_cost_gpu.sh [CONFIG] [CKPT] [PRICE_MODEL] [PRED_INPUT] [PRED_OUTPUT] [--score-thr X]   (joint model)
  PARTS_CONFIG, PARTS_CKPT    config YAML and checkpoint of the car-part model
  DAMAGE_CONFIG, DAMAGE_CKPT  config YAML and checkpoint of the damage model
  CONFIG, CKPT                one joint model whose coco_classes hold the parts and the severities
  PRICE_MODEL                 price model JSON (src.damage_cost.price_models)
  PRED_INPUT                  an image or a folder of images (.jpg .jpeg .png .bmp)
  PRED_OUTPUT                 output folder (report.json, report.csv, *_cost.png)
Environment: DEVICE_TARGET (GPU default, or CPU), DEVICE_ID (default 0), PYTHON (default python).
EOF
}

positional=()
while [ $# -gt 0 ] && [[ "$1" != --* ]]; do
    positional+=("$1")
    shift
done
if [ ${#positional[@]} -eq 5 ]; then
    positional=("${positional[0]}" "${positional[1]}" "${positional[0]}" "${positional[1]}" "${positional[@]:2}")
elif [ ${#positional[@]} -ne 7 ]; then
    usage >&2
    exit 1
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
paths=()
for argument in "${positional[@]}"; do
    paths+=("$(realpath -m "$argument")")
done
for path in "${paths[@]:0:6}"; do
    [ -e "$path" ] || { echo "run_damage_cost_gpu.sh: $path does not exist" >&2; usage >&2; exit 1; }
done
damage=()
if [ "${paths[0]}" != "${paths[2]}" ] || [ "${paths[1]}" != "${paths[3]}" ]; then
    damage=(--damage-config "${paths[2]}" --damage-ckpt "${paths[3]}")
fi

log_dir="$(pwd)/LOG"
mkdir -p "$log_dir"
echo "Damage cost log: $log_dir/damage_cost.log"
cd "$root"
"${PYTHON:-python}" -m src.damage_cost.estimate --parts-config "${paths[0]}" --parts-ckpt "${paths[1]}" \
    "${damage[@]}" --price-model "${paths[4]}" --input "${paths[5]}" --output "${paths[6]}" \
    --device-target "${DEVICE_TARGET:-GPU}" --device-id "${DEVICE_ID:-0}" "$@" 2>&1 | tee "$log_dir/damage_cost.log"
