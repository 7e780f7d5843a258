#!/usr/bin/env bash
# Set up (if needed) and run the whole MMCL chain on a small generated dataset, offline:
# demo data -> manifest -> skeletons -> frames -> temporal images -> RGB and LLM features
# (tiny local models) -> MMCL training (FAM + FRM) -> evaluation -> training curves.
# Usage: bash scripts/demo.sh [OUTPUT_DIR]   (default: ./demo-output)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
out=${1:-demo-output}
mkdir -p "$out"
data="$out/data" work="$out/workdir" models="$out/models" run="$out/run"

pipeline make-demo-data "$data"
pipeline manifest ntu60 "$data" "$work" --shard-size 16
pipeline make-tiny-models "$models"
pipeline run "$work" --from skeletons --to llm-features \
  --encoder "$models/resnet" --model "$models/blip-vqa" -j 2
pipeline status "$work"
train run "$run" --workdir "$work" --preset ntu60-xsub --mmcl \
  --set schedule.epochs=20 --set optim.batch_size=8 --set optim.lr=0.02 \
  --set schedule.warmup_epochs=0
train eval "$run"
train plot "$run" -o "$out/curves.png"

cat <<TXT

Artefacts:
  generated data         $data
  manifest and caches    $work  (pipeline status $work)
  tiny models            $models
  training run           $run  (config.yaml, metrics.jsonl, checkpoints/, tensorboard/)
  evaluation             $run/eval
  training curves        $out/curves.png
TXT
