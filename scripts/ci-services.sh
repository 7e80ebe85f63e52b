#!/usr/bin/env bash
# Start what the test suite needs beyond Python packages, before scripts/test.sh runs it.
# Today: the single-node Slurm of scripts/slurm-up.sh (installed from Debian's packages when missing).
# The moto S3 server is started by the test fixtures themselves. Under CI=true a test that needs a
# service that is missing fails instead of skipping, so a failure here is reported at once.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if ! conf=$("$ROOT/scripts/slurm-up.sh"); then
  echo "ci-services: could not install or start Slurm (scripts/slurm-up.sh failed)" >&2
  exit 1
fi
echo "ci-services: Slurm is up (SLURM_CONF=$conf)"
