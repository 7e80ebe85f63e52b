#!/usr/bin/env bash
# The whole test suite: installs ws with its test extras into a virtualenv, checks the import
# rules (lint-imports: the contracts in pyproject.toml, see docs/architecture.md) and runs
# pytest on 2 workers, slow tests included. A broken import contract fails before any test
# runs. Fixtures start what tests need (moto S3/IAM/Batch/Logs servers and ws gRPC servers on
# 127.0.0.1; a single-node Slurm through scripts/slurm-up.sh, which CI runs beforehand with
# scripts/ci-services.sh); tests that need a missing component skip and say why, except under
# CI=true. pytest exit 5 (no tests collected) counts as a failure.
#   usage: scripts/test.sh [pytest args...]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${WS_VENV:-$ROOT/.venv}
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
if ! "$VENV/bin/python" -m pip install -e "$ROOT[test]" >"$VENV/install.log" 2>&1; then
  tail -20 "$VENV/install.log"; echo "install failed; full log: $VENV/install.log" >&2; exit 1
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
"$VENV/bin/lint-imports" --no-cache
set +e
"$VENV/bin/python" -m pytest -n 2 -q "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "scripts/test.sh: pytest collected no tests" >&2; exit 1; fi
exit "$rc"
