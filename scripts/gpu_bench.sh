#!/usr/bin/env bash
# The GPU throughput table in leaderboards/: every registered fusion, whole model at the paper's
# shapes, one fresh process per fusion (`bench --all`), in each mode:
#   fp32, bf16 (autocast), bf16-compile (+ torch.compile), bf16-graphs and fp32-graphs
#   (+ torch.compile --compile-mode reduce-overhead: CUDA graphs).
# Works from a checkout without installing (PYTHONPATH), as on a lent GPU box.
#
#   scripts/gpu_bench.sh RESULTS_DIR [extra bench options...]
#   MODES="bf16-graphs fp32-graphs" scripts/gpu_bench.sh ...   # a subset, in this order
#
# Then: python -m fusion_bench.cli leaderboard --bench --out RESULTS_DIR --tables RESULTS_DIR
set -u
out=${1:?usage: scripts/gpu_bench.sh RESULTS_DIR [bench options]}; shift
repo=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw,power.limit,temperature.gpu,utilization.gpu --format=csv
fi
"$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
status=0
# Cheapest modes first, so a cut-off run still leaves whole tables behind.
for name in ${MODES:-fp32 bf16 bf16-compile bf16-graphs fp32-graphs}; do
  case $name in
    fp32) mode="" ;;
    bf16) mode="--amp bf16" ;;
    bf16-compile) mode="--amp bf16 --compile" ;;
    bf16-graphs) mode="--amp bf16 --compile-mode reduce-overhead" ;;
    fp32-graphs) mode="--compile-mode reduce-overhead" ;;
    *) echo "unknown mode $name (fp32, bf16, bf16-compile, bf16-graphs, fp32-graphs)" >&2; exit 2 ;;
  esac
  echo "=== $name: bench --all --device ${DEVICE:-cuda} $mode $*"
  # shellcheck disable=SC2086  # $mode is a list of flags
  "$py" -m fusion_bench.cli bench --all --device "${DEVICE:-cuda}" $mode --out "$out" "$@" || status=1
done
exit $status
