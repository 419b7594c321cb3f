#!/usr/bin/env bash
# Starts the claims web page (upload car photos, get the repair-cost report) and its JSON API on the given models.
# The demo (scripts/run_demo_cpu.sh) prints this command with its own models at its end.
# Options after the models go to the app (--port N, --host ADDR, --score-thr X, --max-files N, ...).
set -euo pipefail

usage() {
    cat <<EOF
Usage: bash scripts/run_damage_cost_app.sh [PARTS_CONFIG] [PARTS_CKPT] [DAMAGE_CONFIG] [DAMAGE_CKPT] [PRICE_MODEL] [--port N] [--host ADDR]
       bash scripts/run_damage_cost_app.sh [CONFIG] [CKPT] [PRICE_MODEL] [--port N] [--host ADDR]   (joint model)
  PARTS_CONFIG, PARTS_CKPT    config YAML and checkpoint of the car-part model
  DAMAGE_CONFIG, DAMAGE_CKPT  config YAML and checkpoint of the damage model
  CONFIG, CKPT                one joint model whose coco_classes hold the parts and the severities
  PRICE_MODEL                 price model JSON (src.damage_cost.price_models)
The page is served at http://127.0.0.1:8000/ unless --host/--port say otherwise. Log: ./LOG/damage_cost_app.log.
Environment: DEVICE_TARGET (default: the configs' device_target), DEVICE_ID, PYTHON (default python).
EOF
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/lib/damage_cost_models.sh"
read_damage_cost_models 0 "$@" || { usage >&2; exit 1; }
device=()
[ -n "${DEVICE_TARGET:-}" ] && device+=(--device-target "$DEVICE_TARGET")
[ -n "${DEVICE_ID:-}" ] && device+=(--device-id "$DEVICE_ID")

log_dir="$(pwd)/LOG"
mkdir -p "$log_dir"
echo "Claims app log: $log_dir/damage_cost_app.log"
cd "$root"
"${PYTHON:-python}" -m src.damage_cost.app "${model_options[@]}" --price-model "$price_model" "${device[@]}" \
    "${remaining[@]}" 2>&1 | tee "$log_dir/damage_cost_app.log"
