#!/usr/bin/env bash
# One command: set up the environment and run the main job on the embedded phantom.
#   bash scripts/demo.sh [OUTPUT_DIR] [extra 'deepstationing demo' options]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
out="${1:-$root/outputs/demo}"
[ $# -gt 0 ] && shift
exec "$root/.venv/bin/deepstationing" demo -o "$out" "$@"
