#!/usr/bin/env bash
# The GPU check of issue 12 in one go: at most TOTAL_MINUTES (9) on one H200.
#
#   bash benchmarks/gpu_check.sh                # on a CUDA machine; figures in $OUT
#   bash benchmarks/gpu_check.sh --ucla-only    # only part 2 (resumes a cut-off schedule
#                                               # while RUN_ROOT still holds it)
#   bash benchmarks/gpu_check.sh --cpu-smoke    # every part at tiny size on the CPU
#
# Parts, in this order (each logged to $OUT/<part>.log; a failing part is reported and the
# rest still run; the exit status is non-zero if any part failed):
#   1 pytest      model, loop and feature tests (the loop trains on the GPU through
#                 accelerate; the fast-path equivalence tests run on cpu and cuda)
#   2 nw_ucla     the full NW-UCLA joint-stream schedule (preset nw-ucla: 65 epochs over
#                 the training set repeated 5x, batch 16; ~20,700 steps) with the fast
#                 path in bf16, evaluated every 5 epochs. Estimate on an H200: 10-15 ms a
#                 step, 4-5 minutes. Capped at UCLA_MINUTES (5) and at the time left
#                 less RESERVE (240 s) for parts 3-5; it checkpoints every 500 steps, and
#                 the summary gives the epochs done and the time the rest would take.
#                 Goal: >= 93.5 % top-1 (CTR-GCN, published).
#   3 fast_path   CTR-GCN training step and inference, reference vs fast, fp32 and bf16
#                 (with COMPILE=1 also the fast model under torch.compile, NW-UCLA shape)
#   4 mmcl        `accelerate launch` (1 GPU, bf16) of `train run` on a synthetic NTU60
#                 WORKDIR with cached features: the plain GCN, then MMCL (FAM + FRM);
#                 samples/s and data-wait share from metrics.jsonl
#   5 features    cache-llm-features with a full-size BLIP VQA (random weights from the
#                 default BlipConfig: blip-vqa-base's shapes) and cache-rgb-features with
#                 a ResNet-50 (default ResNetConfig), batched vs one sample at a time
# $OUT/summary.txt collects the figures; at most 7 files are written to $OUT.
#
# Environment: OUT (default ./gpu-check-out), PYTHON (default python3), NW_UCLA (the
# NW-UCLA folder with all_sqe/; default shared/data/nw-ucla or ../shared/data/nw-ucla),
# RUN_ROOT (work folders, default /tmp/gpu-check), TOTAL_MINUTES, UCLA_MINUTES, RESERVE,
# UCLA_WORKERS (DataLoader workers, default 8), COMPILE (default 0).
#
# On the device machine the data beside the checkout does not travel; carry a copy
# (.gpu-data/ is git-ignored):
#   mkdir -p .gpu-data && cp -r ../shared/data/nw-ucla .gpu-data/
#   run(command="PYTHONUNBUFFERED=1 NW_UCLA=.gpu-data/nw-ucla bash benchmarks/gpu_check.sh",
#       carry=[".gpu-data"], timeout_s=600)
set -uo pipefail
cd "$(dirname "$0")/.."

SMOKE=0 UCLA_ONLY=0
for arg in "$@"; do
  case $arg in
    --cpu-smoke) SMOKE=1 ;;
    --ucla-only) UCLA_ONLY=1 ;;
    *) echo "usage: bash benchmarks/gpu_check.sh [--cpu-smoke] [--ucla-only]" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
OUT=${OUT:-gpu-check-out}
RUN_ROOT=${RUN_ROOT:-/tmp/gpu-check}
TOTAL_MINUTES=${TOTAL_MINUTES:-9}
UCLA_MINUTES=${UCLA_MINUTES:-5}
RESERVE=${RESERVE:-240}   # seconds kept after NW-UCLA for parts 3-5
UCLA_WORKERS=${UCLA_WORKERS:-8}
if [[ -z "${NW_UCLA:-}" ]]; then
  for candidate in shared/data/nw-ucla ../shared/data/nw-ucla; do
    if [[ -d "$candidate" ]]; then NW_UCLA=$candidate; break; fi
  done
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$OUT" "$RUN_ROOT"
OUT=$(cd "$OUT" && pwd)
SUMMARY="$OUT/summary.txt"
STARTED=$(date +%s)
DEADLINE=$(( STARTED + $(awk "BEGIN { print int($TOTAL_MINUTES * 60) }") ))
FAILED=()

if (( SMOKE )); then
  DEVICE=cpu; PRECISION=bf16; LAUNCH=(--cpu)
  PYTEST_ARGS=(tests/test_model_ctrgcn_fast.py -k "nw-ucla and not float32")
  FAST_ARGS=(--shapes nw-ucla --repeats 1 --warmup 0)
  MMCL_SAMPLES=64; MMCL_SET=(--set data.window=16 --set optim.batch_size=8
                             --set schedule.epochs=1)
  FEATURE_ARGS=(--full-size --layers 1 --samples 4 --batch-size 2 --repeats 1 --threads 1)
  UCLA_SET=(--set schedule.epochs=1 --set data.repeat=1 --set data.window=16
            --set data.num_workers=0)
else
  DEVICE=cuda; PRECISION=bf16; LAUNCH=()
  PYTEST_ARGS=(tests/test_model_ctrgcn.py tests/test_model_ctrgcn_fast.py
               tests/test_train_loop.py tests/test_train_speed_options.py
               tests/test_features_models.py tests/test_features_llm_stage.py
               tests/test_features_rgb_stage.py tests/test_features_batches.py)
  FAST_ARGS=(--repeats 20 --warmup 3)
  MMCL_SAMPLES=2048; MMCL_SET=(--set optim.batch_size=64 --set schedule.epochs=2
                               --set data.num_workers=8)
  FEATURE_ARGS=(--full-size --samples 256 --batch-size 32 --repeats 1)
  UCLA_SET=(--set data.num_workers="$UCLA_WORKERS")
fi

note() { echo "$*" | tee -a "$SUMMARY"; }
# capped SECONDS KEEP: SECONDS, or less so that KEEP seconds stay before the deadline
capped() {
  local left=$(( DEADLINE - $(date +%s) - $2 ))
  (( left < $1 )) && echo $(( left > 1 ? left : 1 )) || echo "$1"
}
finish() {
  note "total $(( $(date +%s) - STARTED ))s; failed parts: ${FAILED[*]:-none}"
  (( ${#FAILED[@]} == 0 )); exit $?
}

# part NAME CAP_SECONDS COMMAND...: run with a time cap, log, record the outcome
part() {
  local name=$1 cap=$2; shift 2
  local log="$OUT/$name.log" started status
  started=$(date +%s)
  echo "== $name: $*" >>"$log"
  timeout --signal=INT --kill-after=20 "$cap" "$@" >>"$log" 2>&1
  status=$?
  note "[$name] exit $status after $(( $(date +%s) - started ))s (cap ${cap}s): $*"
  if (( status != 0 )); then FAILED+=("$name"); tail -n 15 "$log" | sed 's/^/    /' >>"$SUMMARY"; fi
  return $status
}

: >"$SUMMARY"
note "gpu_check $(date -u +%FT%TZ), smoke=$SMOKE, device=$DEVICE, python=$($PY -c 'import sys; print(sys.version.split()[0])')"
$PY - <<'EOF' 2>&1 | tee -a "$SUMMARY"
import torch
print(f"torch {torch.__version__}, cuda {torch.cuda.is_available()}"
      + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else ""))
EOF
if [[ $DEVICE == cuda ]] && ! $PY -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
  note "no CUDA device: use --cpu-smoke on a CPU machine"; exit 2
fi

# 1. tests
part pytest "$(capped $(( SMOKE ? 600 : 120 )) 0)" $PY -m pytest -q -p no:cacheprovider \
  "${PYTEST_ARGS[@]}"
grep -E "passed|failed" "$OUT/pytest.log" | tail -n 1 | sed 's/^/    /' >>"$SUMMARY"

# 2. NW-UCLA joint stream, full schedule: first, as it needs the most time; the parts
#    after it keep RESERVE seconds
if [[ -z "${NW_UCLA:-}" || ! -d "${NW_UCLA:-}" ]]; then
  note "[nw_ucla] skipped: no NW-UCLA data (set NW_UCLA=folder with all_sqe/)"; FAILED+=(nw_ucla)
else
  UCLA_WD="$RUN_ROOT/nw-ucla-wd"
  part nw_ucla 120 $PY -m pipeline manifest nw-ucla "$NW_UCLA" "$UCLA_WD"
  part nw_ucla 180 $PY -m pipeline extract-skeletons "$UCLA_WD" -j 8
  cap=$(capped $(( UCLA_MINUTES * 60 )) "$RESERVE")
  if (( cap < 60 )); then
    note "[nw_ucla] skipped: ${cap}s left"; FAILED+=(nw_ucla)
  else
    part nw_ucla "$cap" $PY -m train run "$RUN_ROOT/nw-ucla-run" --preset nw-ucla \
      --workdir "$UCLA_WD" --mixed-precision "$PRECISION" --set run.progress=false \
      --set run.checkpoint_every_steps=500 --set run.eval_every_epochs=5 "${UCLA_SET[@]}"
  fi
  cp "$RUN_ROOT/nw-ucla-run/metrics.jsonl" "$OUT/nw_ucla_metrics.jsonl" 2>/dev/null
  $PY benchmarks/gpu_check.py ucla "$RUN_ROOT/nw-ucla-run" 2>&1 | sed 's/^/    /' >>"$SUMMARY"
fi
if (( UCLA_ONLY )); then finish; fi

# 3. CTR-GCN fast path vs reference, fp32 and bf16 (torch.compile with COMPILE=1)
part fast_path "$(capped 90 0)" $PY benchmarks/bench_fast_path.py --device "$DEVICE" \
  --precision fp32 "${FAST_ARGS[@]}"
part fast_path "$(capped 90 0)" $PY benchmarks/bench_fast_path.py --device "$DEVICE" \
  --precision bf16 "${FAST_ARGS[@]}"
if [[ "${COMPILE:-0}" == 1 ]]; then
  part fast_path "$(capped 180 0)" $PY benchmarks/bench_fast_path.py --device "$DEVICE" \
    --precision bf16 --shapes nw-ucla --compile "${FAST_ARGS[@]}"
fi
grep -E "^(ntu|nw-ucla):|^  (impl|reference|fast)|torch " "$OUT/fast_path.log" \
  | sed 's/^/    /' >>"$SUMMARY"

# 4. MMCL step under accelerate launch, 1 process, against the plain GCN
MMCL_WD="$RUN_ROOT/mmcl-wd"
part mmcl "$(capped 60 0)" $PY benchmarks/gpu_check.py mmcl-workdir "$MMCL_WD" \
  --samples "$MMCL_SAMPLES"
for variant in plain mmcl; do
  flags=(); [[ $variant == mmcl ]] && flags=(--mmcl)
  rm -rf "$RUN_ROOT/$variant-run"
  part mmcl "$(capped 120 0)" $PY -m accelerate.commands.launch "${LAUNCH[@]}" \
    --num_processes 1 --num_machines 1 --mixed_precision "$PRECISION" --dynamo_backend no \
    -m train run "$RUN_ROOT/$variant-run" --preset ntu60-xsub --workdir "$MMCL_WD" \
    "${flags[@]}" --mixed-precision "$PRECISION" --set run.progress=false \
    --set schedule.warmup_epochs=0 "${MMCL_SET[@]}"
done
$PY benchmarks/gpu_check.py throughput "$RUN_ROOT/plain-run" "$RUN_ROOT/mmcl-run" \
  2>&1 | sed 's/^/    /' >>"$SUMMARY"

# 5. feature stages with full-size models, batched vs one at a time
part features "$(capped $(( SMOKE ? 900 : 150 )) 0)" $PY benchmarks/bench_features.py \
  --device "$DEVICE" "${FEATURE_ARGS[@]}"
grep -E "^(llm|rgb)-features|batch size|batched /" "$OUT/features.log" \
  | sed 's/^/    /' >>"$SUMMARY"

finish
