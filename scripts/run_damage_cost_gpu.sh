#!/usr/bin/env bash
# Repair-cost estimate of the damages on an image or a folder of images: report.json, report.csv and one
# <image>_cost.png per image in PRED_OUTPUT. Log: ./LOG/damage_cost.log. DEVICE_TARGET=CPU runs on CPU.
# A joint model (parts and severities in one coco_classes): the 5-argument form, or the same config and checkpoint
# given twice (the model then runs once). Arguments after the documented ones go to the estimator (--score-thr X).
set -euo pipefail

usage() {
    cat <<EOF
Usage: bash scripts/run_damage_cost_gpu.sh [PARTS_CONFIG] [PARTS_CKPT] [DAMAGE_CONFIG] [DAMAGE_CKPT] [PRICE_MODEL] [PRED_INPUT] [PRED_OUTPUT] [--score-thr X] [--save-detections]
       bash scripts/run_damage_cost_gpu.sh [CONFIG] [CKPT] [PRICE_MODEL] [PRED_INPUT] [PRED_OUTPUT] [--score-thr X] [--save-detections]   (joint model)
  PARTS_CONFIG, PARTS_CKPT    config YAML and checkpoint of the car-part model
  DAMAGE_CONFIG, DAMAGE_CKPT  config YAML and checkpoint of the damage model
  CONFIG, CKPT                one joint model whose coco_classes hold the parts and the severities
  PRICE_MODEL                 price model JSON (src.damage_cost.price_models)
  PRED_INPUT                  an image or a folder of images (.jpg .jpeg .png .bmp)
  PRED_OUTPUT                 output folder (report.json, report.csv, *_cost.png; detections.json with
                              --save-detections, for python -m src.damage_cost.evaluate_cost --detections)
Environment: DEVICE_TARGET (GPU default, or CPU), DEVICE_ID (default 0), PYTHON (default python).
EOF
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/lib/damage_cost_models.sh"
read_damage_cost_models 2 "$@" || { usage >&2; exit 1; }
input="${extra_paths[0]}"
[ -e "$input" ] || { echo "run_damage_cost_gpu.sh: $input does not exist" >&2; usage >&2; exit 1; }

log_dir="$(pwd)/LOG"
mkdir -p "$log_dir"
echo "Damage cost log: $log_dir/damage_cost.log"
cd "$root"
"${PYTHON:-python}" -m src.damage_cost.estimate "${model_options[@]}" --price-model "$price_model" --input "$input" \
    --output "${extra_paths[1]}" --device-target "${DEVICE_TARGET:-GPU}" --device-id "${DEVICE_ID:-0}" \
    "${remaining[@]}" 2>&1 | tee "$log_dir/damage_cost.log"
