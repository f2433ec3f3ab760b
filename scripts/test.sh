#!/usr/bin/env bash
# One command: set up the environment and run the test suite (default: fast tests).
#   bash scripts/test.sh            fast suite (what CI runs)
#   bash scripts/test.sh --slow     slow tests only (training, full-size cohorts)
#   bash scripts/test.sh --all      everything
# Other arguments are passed to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
cd "$root"
export OMP_WAIT_POLICY=PASSIVE MPLBACKEND=Agg
marker=()
case "${1:-}" in
  --slow) marker=(-m slow); shift ;;
  --all) marker=(-m "slow or not slow"); shift ;;
esac
"$root/.venv/bin/python" -m ruff check src tests benchmarks
"$root/.venv/bin/lint-imports" --no-cache  # the import ladder (pyproject.toml [tool.importlinter])
exec "$root/.venv/bin/python" -m pytest "${marker[@]}" "$@"
