#!/usr/bin/env bash
# One command: set up the environment and run the main job on the embedded phantom:
# the paper's protocol at demo scale (phantom cohort, Table 1's settings, report).
#   bash scripts/demo.sh [OUTPUT_DIR] [extra 'deepstationing experiment paper' options]
# Re-running continues where an interrupted run stopped (finished jobs are kept).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
out="${1:-$root/outputs/demo}"
[ $# -gt 0 ] && shift
exec "$root/.venv/bin/deepstationing" experiment paper --cohort "$out/phantom" --out "$out" \
    --scale demo --jobs 2 --threads 1 "$@"
