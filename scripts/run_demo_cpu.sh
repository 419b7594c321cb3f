#!/usr/bin/env bash
# End-to-end demo on CPU, photos in, repair-cost report out: environment, synthetic car-damage data, kernels, a
# parts model and a damage model trained from scratch (or one joint model), their evaluation, a price model fitted
# on the train subset's past claims, the repair-cost report of the test photos, and its error against the true
# prices of their claims. Everything goes to OUT_DIR (outputs/demo).
# Usage: bash scripts/run_demo_cpu.sh [--key value ...]   (config overrides for the training, e.g. --epoch_size 2)
# Environment: OUT_DIR, DATA_DIR (default data/synthetic_car_damage), DEMO_MODELS (separate, default, or joint),
#              JOINT_CONFIG (configs/demo_joint_cpu.yaml), PARTS_CONFIG (configs/demo_parts_cpu.yaml),
#              DAMAGE_CONFIG (configs/demo_damage_cpu.yaml), PRICE_MODEL_KIND (regression, group_mean or
#              global_mean), DEMO_IMAGES (synthetic 512x512 images generated when DATA_DIR has none, default 300).
set -euo pipefail

if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if ! python -c "import mindspore" >/dev/null 2>&1; then
    if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import mindspore" >/dev/null 2>&1; then
        echo "== Setting up the environment (.venv)"
        bash scripts/setup_env.sh
    fi
    export PATH="$root/.venv/bin:$PATH"
fi
export PYTHON=python DEVICE_TARGET=CPU
data_dir="$(realpath -m "${DATA_DIR:-$root/data/synthetic_car_damage}")"
out_dir="$(realpath -m "${OUT_DIR:-$root/outputs/demo}")"
joint_config="$(realpath -m "${JOINT_CONFIG:-$root/configs/demo_joint_cpu.yaml}")"
parts_config="$(realpath -m "${PARTS_CONFIG:-$root/configs/demo_parts_cpu.yaml}")"
damage_config="$(realpath -m "${DAMAGE_CONFIG:-$root/configs/demo_damage_cpu.yaml}")"
models="${DEMO_MODELS:-separate}"
case "$models" in
    joint|separate) ;;
    *) echo "run_demo_cpu.sh: DEMO_MODELS must be 'joint' or 'separate', got '$models'" >&2; exit 1 ;;
esac
mkdir -p "$out_dir"

if [ ! -f "$data_dir/parts/train/labels.json" ]; then
    echo "== Generating the synthetic dataset in $data_dir"
    python -m src.tools.make_synthetic_car_damage --out "$data_dir" --seed 0 --num-images "${DEMO_IMAGES:-300}"
fi
echo "== Building the RoIAlign kernels"
bash scripts/build_custom.sh

# train_and_evaluate TASK CONFIG [--key value ...]: trains on DATA/TASK, evaluates the last checkpoint on its
# validation subset (scoring the predictions of the training's final evaluation when it made one, instead of
# running the model on the same photos again); prints the checkpoint path as the last line.
train_and_evaluate() {
    local task="$1" config="$2"
    shift 2
    mkdir -p "$out_dir/$task"
    (
        cd "$out_dir/$task"
        echo "== Training the $task model (log: $out_dir/$task/LOG/train.log)" >&2
        bash "$root/scripts/run_standalone_train_gpu.sh" "$config" "$data_dir/$task/train" \
            "$data_dir/$task/validation" "$out_dir/$task/train_outputs" "demo-$task" "$@" >&2
        experiment="$(ls -td "$out_dir/$task"/train_outputs/*/ | head -1)"
        checkpoint="$(ls -t "${experiment%/}"/checkpoints/*.ckpt | head -1)"
        echo "== Evaluating the $task model (log: $out_dir/$task/LOG/eval.log)" >&2
        rm -f "$out_dir/$task/predictions.json"
        if [ -f "${experiment%/}/val_predictions.json" ]; then
            cp "${experiment%/}/val_predictions.json" "$out_dir/$task/predictions.json"
        fi
        bash "$root/scripts/run_eval_gpu.sh" "$config" "$data_dir/$task/validation" "$checkpoint" \
            "$out_dir/$task/predictions.json" >&2
        python "$root/src/tools/plot_training.py" "${experiment%/}" >&2
        echo "$checkpoint"
    )
}
if [ "$models" = joint ]; then
    echo "== Merging the parts and damage labels for the joint model"
    python -m src.tools.merge_coco --inputs "$data_dir/parts" "$data_dir/damage" --out "$data_dir/joint"
    joint_checkpoint="$(train_and_evaluate joint "$joint_config" "$@" | tail -1)"
    model_arguments=("$joint_config" "$joint_checkpoint")
else
    parts_checkpoint="$(train_and_evaluate parts "$parts_config" "$@" | tail -1)"
    damage_checkpoint="$(train_and_evaluate damage "$damage_config" "$@" | tail -1)"
    model_arguments=("$parts_config" "$parts_checkpoint" "$damage_config" "$damage_checkpoint")
fi

echo "== Price model: k-fold comparison on the train subset's claims, then the ${PRICE_MODEL_KIND:-regression} model fitted on all of them"
python -m src.damage_cost.evaluate_pricing "$data_dir/claims.csv" --subset train --out "$out_dir/pricing_cv.csv" \
    --fit-out "$out_dir/price_model.json" --model "${PRICE_MODEL_KIND:-regression}"

echo "== Repair-cost report of the test photos"
bash "$root/scripts/run_damage_cost_gpu.sh" "${model_arguments[@]}" "$out_dir/price_model.json" \
    "$data_dir/parts/test/data" "$out_dir/damage_cost" --save-detections

echo "== The estimate against the true prices of the test claims (first row: the same pipeline on the annotated masks)"
python -m src.damage_cost.evaluate_cost --detections "$out_dir/damage_cost/detections.json" \
    --price-model "$out_dir/price_model.json" --dataset "$data_dir" --subset test --out "$out_dir/cost_error.csv"

cat <<EOF

Demo finished.
  repair-cost report:   $out_dir/damage_cost/report.json, report.csv
  annotated photos:     $out_dir/damage_cost/*_cost.png
  models ($models):     ${model_arguments[*]}
  model evaluation:     $out_dir/*/LOG/eval.log, training curves in $out_dir/*/train_outputs/*/
  price model:          $out_dir/price_model.json (k-fold comparison: $out_dir/pricing_cv.csv)
  cost error:           $out_dir/cost_error.csv

The claims web page on these models (then open http://127.0.0.1:8000/):
  bash scripts/run_damage_cost_app.sh ${model_arguments[*]} $out_dir/price_model.json
EOF
