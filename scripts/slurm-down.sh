#!/usr/bin/env bash
# Stop the single-node Slurm that scripts/slurm-up.sh started (its slurmctld and slurmd, by their pid
# files; munged is left running). With --purge, also delete its folder (state, spool, logs).
#   usage: scripts/slurm-down.sh [--purge]
set -euo pipefail
D=${WS_SLURM_DIR:-/tmp/ws-slurm}
exec 9>"$D.lock"
flock 9
alive() {  # the pid file's process still runs that daemon (pids are reused; a zombie is dead)
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$(basename "$1" .pid)" ] &&
    ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null
}
for f in "$D/slurmctld.pid" "$D/slurmd.pid"; do
  if alive "$f"; then kill "$(cat "$f")"; fi
done
for _ in $(seq 1 50); do
  still=0
  for f in "$D/slurmctld.pid" "$D/slurmd.pid"; do alive "$f" && still=1; done
  [ "$still" = 0 ] && break
  sleep 0.1
done
if [ "${1:-}" = "--purge" ]; then rm -rf "$D"; fi
