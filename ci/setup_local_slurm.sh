#!/usr/bin/env bash
# Start a real single-node SLURM cluster on localhost (munged + slurmctld + slurmd) so that the
# workflow can be tested with the project's real-cluster profile (profiles/slurm) in CI.
#
#   bash ci/setup_local_slurm.sh        # as root, Debian 12; no systemd needed
#   bash ci/stop_local_slurm.sh         # stops exactly the daemons this script started
#
# Idempotent: when the daemons it started are still running with the same configuration and the
# node is idle, it only says so. Otherwise it (re)starts its own daemons; it never touches a
# slurmctld/slurmd it did not start, and refuses to overwrite a slurm.conf it did not write.
#
# Environment:
#   SLURM_CI_DIR      state, pid files and logs            (default /tmp/colliderflow-slurm)
#   SLURM_CI_CPUS     CPU slots the node advertises         (default: max(nproc, 4), see below)
#   SLURM_CI_SMOKE    1 = submit one tiny GPU job to prove the node runs jobs (default 1)
set -euo pipefail

STATE_DIR=${SLURM_CI_DIR:-/tmp/colliderflow-slurm}
SMOKE=${SLURM_CI_SMOKE:-1}
# slurm.conf must live at the compiled-in default path: the executor plugin's in-job `srun` runs
# with every SLURM_* variable (SLURM_CONF included) removed from its environment.
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
GRES_CONF=$CONF_DIR/gres.conf
MARKER="# Written by colliderflow ci/setup_local_slurm.sh (and reduced to a stub by ci/stop_local_slurm.sh)."
MUNGE_PIDFILE=/run/munge/munged.pid
# The daemons live in /usr/sbin, which a non-login root shell may not have on PATH.
PATH=$PATH:/usr/sbin:/sbin

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
node_state() { sinfo -h -n localhost -o '%t' 2>/dev/null || true; }

if [ "$(id -u)" != 0 ]; then
  echo "setup_local_slurm.sh: must run as root (it installs packages and starts daemons)" >&2
  exit 1
fi

t_start=$(now)

# --- 1. packages -----------------------------------------------------------------------------
# Without recommends this is 9 small packages; with them apt pulls ~40 (MPI, mail, ...) we never use.
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
   || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends slurm-wlm munge
fi
t_installed=$(now)

# --- 2. the configuration this run wants ------------------------------------------------------
n_real=$(nproc)
# The real-cluster profile asks for up to 4 CPUs on the GPU partition (train: cpus_per_gpu=4). The
# node advertises at least that many slots so its requests are schedulable unchanged; on a 2-core
# machine the slots then share the real cores. config_overrides makes slurmd report the configured
# CPU count instead of draining the node for having fewer CPUs than configured.
min_cpus=4
cpus=${SLURM_CI_CPUS:-$(( n_real > min_cpus ? n_real : min_cpus ))}
slurmd_params=""
if [ "$cpus" -gt "$n_real" ]; then slurmd_params="SlurmdParameters=config_overrides"; fi
# RealMemory above the machine's memory would mark the node INVALID; leave 1 GiB to the system.
mem_mb=$(( $(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo) - 1024 ))

wanted_conf=$(cat <<CONF
$MARKER
ClusterName=colliderflow-ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# No cgroups in a CI container: track processes by parent pid, no CPU binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# No slurmdbd: the profile's status command is squeue, which reads slurmctld directly.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE_DIR/log/jobcomp.txt
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# A job without --mem would otherwise get the whole node's memory and serialise everything.
DefMemPerCPU=256
ReturnToService=2
# Finished jobs stay visible to squeue/scontrol this long (s). The plugin's squeue status check
# relies on it (it falls back to sacct when MinJobAge < 3 x the first status-check delay), and the
# tests read back what SLURM recorded for every job after the run.
MinJobAge=300
GresTypes=gpu
$slurmd_params
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# One node named localhost whatever the hostname is (slurmd runs with -N localhost).
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:1 State=UNKNOWN
# The partitions the real-cluster profile names (profiles/slurm/config.yaml), sharing the node.
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost Default=NO MaxTime=INFINITE State=UP
CONF
)
# A GPU-less machine: slurmd drops a GPU that has no device file, so the fake one points at
# /dev/null. Jobs get CUDA_VISIBLE_DEVICES=0 but no CUDA device; the code falls back to the CPU.
wanted_gres="$MARKER
NodeName=localhost Name=gpu File=/dev/null"

for f in "$CONF" "$GRES_CONF"; do
  if [ -e "$f" ] && ! grep -qxF "$MARKER" "$f"; then
    echo "setup_local_slurm.sh: $f exists and was not written by this script; not overwriting it" >&2
    exit 1
  fi
done

# --- 3. already up? ---------------------------------------------------------------------------
if alive "$STATE_DIR/slurmctld.pid" && alive "$STATE_DIR/slurmd.pid" \
   && [ "$(cat "$CONF" 2>/dev/null)" = "$wanted_conf" ] \
   && [ "$(cat "$GRES_CONF" 2>/dev/null)" = "$wanted_gres" ] \
   && [ "$(node_state)" = idle ]; then
  echo "local SLURM already running (slurmctld pid $(cat "$STATE_DIR/slurmctld.pid"), slurmd pid $(cat "$STATE_DIR/slurmd.pid")); nothing to do"
  exit 0
fi

# Daemons of ours from an earlier run (a changed config, or a half-dead cluster): stop them first.
if [ -d "$STATE_DIR" ]; then
  SLURM_CI_KEEP_MUNGE=1 bash "$(dirname "$0")/stop_local_slurm.sh"
fi
# Anything still running now was not started by this script: it would hold the ports (6817/6818).
for daemon in slurmctld slurmd; do
  if pgrep -x "$daemon" >/dev/null; then
    echo "setup_local_slurm.sh: a $daemon not started by this script is running (pid $(pgrep -x "$daemon" | tr '\n' ' ')); stop it first" >&2
    exit 1
  fi
done

# --- 4. munge (authentication between the SLURM commands and daemons) -------------------------
# Debian's munge postinst creates the key; create one if it is missing. munged runs as `munge`.
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 0755 /run/munge
mkdir -p "$STATE_DIR"
if alive "$MUNGE_PIDFILE"; then
  # Someone else's munged (or ours from before) serves the same key: use it. The stop script only
  # stops munged when this directory records that we started this very process.
  if [ -f "$STATE_DIR/munged.started" ] && ! cmp -s "$STATE_DIR/munged.started" "$MUNGE_PIDFILE"; then
    rm -f "$STATE_DIR/munged.started"
  fi
else
  rm -f "$STATE_DIR/munged.started"
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 1 50); do alive "$MUNGE_PIDFILE" && break; sleep 0.1; done
  cp "$MUNGE_PIDFILE" "$STATE_DIR/munged.started"
fi
munge -n | unmunge >/dev/null   # fails here, loudly, if munge does not work
t_munge=$(now)

# --- 5. configuration and daemons -------------------------------------------------------------
# Fresh controller state every start: job ids from 1, no jobs left over from an earlier run.
rm -rf "$STATE_DIR/ctld" "$STATE_DIR/slurmd" "$STATE_DIR/log"
mkdir -p "$STATE_DIR/ctld" "$STATE_DIR/slurmd" "$STATE_DIR/log" "$CONF_DIR"
printf '%s\n' "$wanted_conf" > "$CONF"
printf '%s\n' "$wanted_gres" > "$GRES_CONF"

# Both fork into the background and write the pid files named in slurm.conf.
slurmctld
slurmd -N localhost
for _ in $(seq 1 120); do
  [ "$(node_state)" = idle ] && break
  sleep 0.25
done
if [ "$(node_state)" != idle ]; then
  echo "setup_local_slurm.sh: the SLURM node did not become idle:" >&2
  sinfo -N -l >&2 || true
  scontrol show node localhost >&2 || true
  tail -n 30 "$STATE_DIR"/log/*.log >&2 || true
  exit 1
fi
t_idle=$(now)

# --- 6. smoke test: one job on the gpu partition, as the profile submits GPU work --------------
if [ "$SMOKE" = 1 ]; then
  # Polled here rather than with `sbatch --wait`, whose back-off adds up to 8 s to a 1 s job.
  smoke_id=$(sbatch --parsable -p gpu --gpus=1 -t 1 --mem 16 -o /dev/null -J ci-smoke --wrap true)
  smoke_state=""
  for _ in $(seq 1 240); do
    smoke_state=$(squeue -h -t all -j "$smoke_id" -o '%T' 2>/dev/null || true)
    case "$smoke_state" in PENDING|CONFIGURING|RUNNING|COMPLETING|"") sleep 0.25 ;; *) break ;; esac
  done
  if [ "$smoke_state" != COMPLETED ]; then
    echo "setup_local_slurm.sh: a trivial job on partition gpu ended as '${smoke_state:-unknown}'" >&2
    scontrol show job "$smoke_id" >&2 || true
    tail -n 30 "$STATE_DIR"/log/*.log >&2 || true
    exit 1
  fi
fi
t_end=$(now)

sinfo
echo "local SLURM up in $(elapsed "$t_start" "$t_end")s: packages $(elapsed "$t_start" "$t_installed")s," \
     "munge $(elapsed "$t_installed" "$t_munge")s, daemons until idle $(elapsed "$t_munge" "$t_idle")s," \
     "smoke job $(elapsed "$t_idle" "$t_end")s (node: $cpus CPU slots on $n_real cores, ${mem_mb} MB, gpu:1 fake;" \
     "logs in $STATE_DIR/log)"
