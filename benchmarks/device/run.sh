#!/usr/bin/env bash
# The GPU benchmark of issue 21 in one device call (benchmarks/device/README.md).
#
#   bash benchmarks/device/run.sh                         # on the device machine (~8 min)
#   DRY=1 OUT=/tmp/ds-device-dry bash benchmarks/device/run.sh   # tiny, on a CPU
#
# Installs the wheel kit when .devkit/ is present, records nvidia-smi (utilisation and
# memory, every second) to $OUT/gpu_util.csv, runs gpu_bench.py with the settings below
# (each one an environment variable) and writes everything under $OUT (default
# /tmp/ds-device-out): gpu.json, gpu.md, progress.log, run.log, nvidia-smi.txt, train_logs/.
set -u
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
OUT=${OUT:-/tmp/ds-device-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
START=$(date +%s)
PY=${PYTHON:-python3}
echo "run.sh: $(date '+%F %T') on $(hostname), root $ROOT, out $OUT, DRY=${DRY:-0}"

if [ -d .devkit ]; then
  t=$(date +%s)
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .devkit/*.whl \
    && tar xJf .devkit/simpleitk.tar.xz -C /tmp/site \
    && export PYTHONPATH=/tmp/site:$ROOT/src || { echo "run.sh: kit install failed"; exit 1; }
  echo "run.sh: kit installed in $(( $(date +%s) - t )) s"
else
  export PYTHONPATH=$ROOT/src${PYTHONPATH:+:$PYTHONPATH}
fi

# what was run (the device gets a copy of the working tree; .git may not travel)
DS_GIT_COMMIT=$(git rev-parse HEAD 2>/dev/null || echo "")
DS_GIT_DIRTY=$(git status --porcelain 2>/dev/null | wc -l | tr -d ' ')
export DS_GIT_COMMIT DS_GIT_DIRTY

SMI_PID=""
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,memory.total \
    --format=csv,nounits -l 1 > "$OUT/gpu_util.csv" 2>/dev/null &
  SMI_PID=$!
else
  echo "run.sh: no nvidia-smi here: no GPU utilisation log"
fi
stop_smi() { if [ -n "$SMI_PID" ]; then kill "$SMI_PID" 2>/dev/null; wait "$SMI_PID" 2>/dev/null; fi; }
trap stop_smi EXIT

if [ "${DRY:-0}" = 1 ]; then  # tiny: the full configuration's code path on a coarse grid
  : "${DEVICE:=cpu}" "${CONFIG:=full}" "${CASES:=4}" "${PRESET:=small}"
  : "${SPACING:=11.2,11.2,20}" "${ORGAN_MINUTES:=0.4}" "${STATION_MINUTES:=0.4}"
  : "${ITERATIONS:=2}" "${VAL_ITERATIONS:=1}" "${SNAPSHOTS:=2}" "${WORKERS:=0}"
  : "${THREADS:=2}" "${PREDICT_CASES:=2}" "${TTA_CASES:=1}" "${PREDICT_PRESET:=small}"
  : "${PREDICT_SPACING:=11.2,11.2,20}" "${MINUTES:=7}" "${RESERVE_MINUTES:=1}"
  : "${WORKDIR:=/tmp/ds-device-dry-work}" "${HARD_LIMIT:=600}"
else          # the device machine: one H200, 16 cores, one call of at most 10 minutes
  : "${DEVICE:=cuda}" "${CONFIG:=full}" "${CASES:=8}" "${PRESET:=full}"
  : "${SPACING:=}" "${ORGAN_MINUTES:=1}" "${STATION_MINUTES:=1.5}"
  : "${ITERATIONS:=50}" "${VAL_ITERATIONS:=5}" "${SNAPSHOTS:=3}" "${WORKERS:=}"
  : "${THREADS:=}" "${PREDICT_CASES:=3}" "${TTA_CASES:=2}" "${PREDICT_PRESET:=full}"
  : "${PREDICT_SPACING:=}" "${MINUTES:=8}" "${RESERVE_MINUTES:=2.5}"
  : "${WORKDIR:=/tmp/ds-device-work}" "${HARD_LIMIT:=520}"
fi
[ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$WORKDIR"

ARGS=(--device "$DEVICE" --config "$CONFIG" --cases "$CASES" --preset "$PRESET"
      --organ-minutes "$ORGAN_MINUTES" --station-minutes "$STATION_MINUTES"
      --iterations "$ITERATIONS" --val-iterations "$VAL_ITERATIONS" --snapshots "$SNAPSHOTS"
      --predict-cases "$PREDICT_CASES" --tta-cases "$TTA_CASES"
      --predict-preset "$PREDICT_PRESET"
      --minutes "$MINUTES" --reserve-minutes "$RESERVE_MINUTES"
      --workdir "$WORKDIR" --out "$OUT" --gpu-log "$OUT/gpu_util.csv")
[ -n "$SPACING" ] && ARGS+=(--spacing "$SPACING")
[ -n "$PREDICT_SPACING" ] && ARGS+=(--predict-spacing "$PREDICT_SPACING")
[ -n "$WORKERS" ] && ARGS+=(--workers "$WORKERS")
[ -n "$THREADS" ] && ARGS+=(--threads "$THREADS")
[ -n "${ORGAN_EPOCHS:-}" ] && ARGS+=(--organ-epochs "$ORGAN_EPOCHS")
[ -n "${STATION_EPOCHS:-}" ] && ARGS+=(--station-epochs "$STATION_EPOCHS")
[ -n "${STEPS:-}" ] && ARGS+=(--steps "$STEPS")
[ -n "${NOTE:-}" ] && ARGS+=(--note "$NOTE")
export DS_RUN_SH_COMMAND="DRY=${DRY:-0} bash benchmarks/device/run.sh (gpu_bench.py ${ARGS[*]})"
echo "run.sh: $PY benchmarks/device/gpu_bench.py ${ARGS[*]}"

# a hard stop short of the device call's limit: gpu.json/gpu.md are saved after every step
OMP_WAIT_POLICY=PASSIVE MPLBACKEND=Agg timeout --signal=TERM --kill-after=10 "$HARD_LIMIT" \
  "$PY" benchmarks/device/gpu_bench.py "${ARGS[@]}"
RC=$?
stop_smi
trap - EXIT
echo "run.sh: gpu_bench.py exited $RC after $(( $(date +%s) - START )) s in all"
ls -la "$OUT"
exit $RC
