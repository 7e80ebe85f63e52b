#!/usr/bin/env bash
# A single-node Slurm on this machine, as root, for the tests and for trying `backend: slurm` by hand.
# Idempotent and safe to call from several processes at once (an flock serializes callers): installs
# Debian's slurmctld, slurmd, slurm-client and munge when missing, writes $WS_SLURM_DIR/slurm.conf,
# starts munged, slurmctld and slurmd (restarting the two Slurm daemons when the configuration
# changed), waits until the node accepts jobs and prints the path to export as SLURM_CONF.
#   usage: scripts/slurm-up.sh            (then: export SLURM_CONF=$(scripts/slurm-up.sh))
# Works on 2-core machines without systemd. Differences from a stock cluster, and why:
#   KillWait=3           scancel sends TERM, then KILL after KillWait (default 30 s): tests cancel
#                        jobs that ignore TERM and should not wait half a minute for it
#   MaxArraySize=10001   a 10,000-member sweep is one array (default 1001)
#   task/cgroup          --mem enforced by the kernel (OUT_OF_MEMORY) when a cgroup v1 memory controller
#                        is writable; else task/none + jobacct_gather OverMemoryKill (docs/backends.md)
#   MinJobAge=600        finished jobs stay visible to squeue for 10 minutes
#   no accounting        (no slurmdbd): finished jobs are read from jobcomp/filetxt
set -euo pipefail
D=${WS_SLURM_DIR:-/tmp/ws-slurm}
mkdir -p "$D"
exec 9>"$D.lock"
if ! flock -w 300 9; then echo "slurm-up: $D.lock has been held for 5 minutes (another slurm-up.sh?)" >&2; exit 1; fi

need_install=0
for exe in slurmctld slurmd sbatch munged; do command -v "$exe" >/dev/null || need_install=1; done
if [ "$need_install" = 1 ]; then
  log=$D/apt.log
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge; } >"$log" 2>&1; then
    tail -5 "$log" >&2; echo "slurm-up: installing Slurm from Debian's packages failed (log: $log)" >&2; exit 1
  fi
fi

mkdir -p "$D/state" "$D/spool" "$D/log"
CPUS=$(nproc)
# Memory: task/cgroup (cgroup v1 memory controller) makes the kernel enforce --mem and Slurm report
# OUT_OF_MEMORY, as on real clusters. Without a usable controller, fall back to sampling with
# jobacct_gather/linux + OverMemoryKill (kills the job, which Slurm then reports as FAILED).
CG=/sys/fs/cgroup/memory
probe=$CG/ws-slurm-probe-$$
if [ "${WS_SLURM_CGROUP:-auto}" != no ] && [ -w "$CG/memory.limit_in_bytes" ] && mkdir "$probe" 2>/dev/null; then
  rmdir "$probe"
  LIMITS="ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
JobAcctGatherType=jobacct_gather/cgroup
JobAcctGatherFrequency=task=1"
  printf 'CgroupPlugin=cgroup/v1\nCgroupMountpoint=/sys/fs/cgroup\nCgroupAutomount=no\nConstrainRAMSpace=yes\nConstrainSwapSpace=yes\n' \
    > "$D/cgroup.conf"
else
  LIMITS="ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill"
  rm -f "$D/cgroup.conf"
fi
cat > "$D/slurm.conf.new" <<C
ClusterName=wslocal
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
$LIMITS
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=100000
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$D/state/jobcomp.txt
MinJobAge=600
KillWait=3
MaxArraySize=10001
MaxJobCount=50000
ReturnToService=2
MpiDefault=none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
C
export SLURM_CONF=$D/slurm.conf

# a pid file names a live daemon only if that pid still runs the daemon (pids are reused; a zombie is dead)
alive() {
  local pid name
  pid=$(cat "$1" 2>/dev/null) || return 1
  name=$(basename "$1" .pid)
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] &&
    ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null
}
stop() {  # the daemons started from this folder (their pid files), never others
  local f sig
  for sig in TERM KILL; do
    for f in "$D/slurmctld.pid" "$D/slurmd.pid"; do
      if alive "$f"; then kill -s "$sig" "$(cat "$f")" 2>/dev/null || true; fi
    done
    for _ in $(seq 1 50); do alive "$D/slurmctld.pid" || alive "$D/slurmd.pid" || return 0; sleep 0.1; done
  done
}
SUM=$(sha256sum < "$D/slurm.conf.new" | cut -c1-64)
if [ "$(cat "$D/state/ws-conf.sum" 2>/dev/null)" != "$SUM" ]; then
  # a new configuration is a new test cluster: its saved state (cluster name, queued jobs) goes too
  stop
  rm -rf "$D/state" "$D/spool" && mkdir -p "$D/state" "$D/spool"
  mv "$D/slurm.conf.new" "$D/slurm.conf"
  echo "$SUM" > "$D/state/ws-conf.sum"
else
  rm -f "$D/slurm.conf.new"
fi

if ! pgrep -x munged >/dev/null; then
  mkdir -p /run/munge && chown munge: /run/munge
  [ -s /etc/munge/munge.key ] || { mungekey --create 2>/dev/null || create-munge-key; chown munge: /etc/munge/munge.key; }
  runuser -u munge -- /usr/sbin/munged 9>&-  # a daemon: it must not keep our lock
fi
# the daemons must not inherit the lock (fd 9): they would hold it for their whole life
cd /  # the daemons must not keep a folder that may be deleted (a test tree, a worktree) as their cwd
if ! alive "$D/slurmctld.pid"; then (setsid slurmctld -D -i </dev/null >"$D/log/ctld.out" 2>&1 9>&- &); fi
if ! alive "$D/slurmd.pid"; then (setsid slurmd -D -N localhost </dev/null >"$D/log/d.out" 2>&1 9>&- &); fi
for i in $(seq 1 300); do
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then echo "$SLURM_CONF"; exit 0; fi
  if [ "$i" -gt 20 ] && ! pgrep -f "^slurmctld -D" >/dev/null; then break; fi  # it died at start-up
  sleep 0.1
done
echo "slurm-up: Slurm did not become ready; see $D/log/" >&2
tail -n 3 "$D/log/ctld.out" "$D/log/slurmctld.log" "$D/log/slurmd.log" >&2 || true
exit 1
