#!/usr/bin/env bash
# End-to-end demo on CPU: environment, synthetic car-parts data, kernels, training of a small model from scratch,
# evaluation, inference with overlays and training curves. Everything goes to OUT_DIR (default outputs/demo).
# Usage: bash scripts/run_demo_cpu.sh [--key value ...]   (config overrides for training, e.g. --epoch_size 4)
# Environment: OUT_DIR, DATA_DIR (default data/synthetic_car_damage), DEMO_CONFIG (default configs/demo_parts_cpu.yaml),
#              DEMO_IMAGES (synthetic 512x512 images generated when DATA_DIR has none, default 300).
set -euo pipefail

if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
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
config="$(realpath -m "${DEMO_CONFIG:-$root/configs/demo_parts_cpu.yaml}")"
mkdir -p "$out_dir"

if [ ! -f "$data_dir/parts/train/labels.json" ]; then
    echo "== Generating the synthetic dataset in $data_dir"
    python -m src.tools.make_synthetic_car_damage --out "$data_dir" --seed 0 --num-images "${DEMO_IMAGES:-300}"
fi
echo "== Building the RoIAlign kernels"
bash scripts/build_custom.sh

cd "$out_dir"
echo "== Training (log: $out_dir/LOG/train.log)"
bash "$root/scripts/run_standalone_train_gpu.sh" "$config" "$data_dir/parts/train" "$data_dir/parts/validation" \
    "$out_dir/train_outputs" demo-parts "$@"
experiment="$(ls -td "$out_dir"/train_outputs/*/ | head -1)"
experiment="${experiment%/}"
checkpoint="$(ls -t "$experiment"/checkpoints/*.ckpt | head -1)"

echo "== Evaluating $checkpoint"
rm -f "$out_dir/predictions.json"
bash "$root/scripts/run_eval_gpu.sh" "$config" "$data_dir/parts/validation" "$checkpoint" \
    "$out_dir/predictions.json"
echo "== Inference on $data_dir/parts/test/data"
bash "$root/scripts/run_infer_gpu.sh" "$config" "$checkpoint" "$data_dir/parts/test/data" "$out_dir/infer.json" \
    --visualize "$out_dir/overlays"
echo "== Training curves"
python "$root/src/tools/plot_training.py" "$experiment"

cat <<EOF

Demo finished.
  experiment (config, log, metrics.csv, losses.csv, checkpoints, curves): $experiment
  checkpoint used:      $checkpoint
  evaluation log:       $out_dir/LOG/eval.log
  predictions (COCO):   $out_dir/predictions.json
  inference JSON:       $out_dir/infer.json
  overlays:             $out_dir/overlays/
EOF
