#!/usr/bin/env bash
# Stop the single-node Slurm that scripts/slurm-up.sh started (its slurmctld and slurmd, by their pid
# files; munged is left running). With --purge, also delete its folder (state, spool, logs).
#   usage: scripts/slurm-down.sh [--purge]
set -euo pipefail
D=${WS_SLURM_DIR:-/tmp/ws-slurm}
exec 9>"$D.lock"
flock 9
for f in "$D/slurmctld.pid" "$D/slurmd.pid"; do
  if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then kill "$(cat "$f")"; fi
done
for _ in $(seq 1 50); do
  still=0
  for f in "$D/slurmctld.pid" "$D/slurmd.pid"; do [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && still=1; done
  [ "$still" = 0 ] && break
  sleep 0.1
done
if [ "${1:-}" = "--purge" ]; then rm -rf "$D"; fi
