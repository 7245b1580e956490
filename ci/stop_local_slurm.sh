#!/usr/bin/env bash
# Stop the local SLURM cluster started by ci/setup_local_slurm.sh: exactly the daemons whose pid
# files it wrote (slurmd, slurmctld, and munged only if it started munged), nothing found by name.
# Safe to call twice, or when setup never ran (for an EXIT trap).
#
# Environment:
#   SLURM_CI_DIR         as for the setup script (default /tmp/colliderflow-slurm)
#   SLURM_CI_KEEP_MUNGE  1 = leave munged running (the setup script uses this when it restarts)
set -euo pipefail

STATE_DIR=${SLURM_CI_DIR:-/tmp/colliderflow-slurm}
KEEP_MUNGE=${SLURM_CI_KEEP_MUNGE:-0}
MARKER="# Written by colliderflow ci/setup_local_slurm.sh (and reduced to a stub by ci/stop_local_slurm.sh)."

# The pid in $1 if that process is alive and is the program $2 (guards against a reused pid).
our_pid() {
  local pidfile=$1 name=$2 pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
  echo "$pid"
}

if [ ! -d "$STATE_DIR" ]; then
  echo "stop_local_slurm.sh: $STATE_DIR does not exist; nothing to stop"
  exit 0
fi

# 1. Jobs first. Killing slurmd does not end the slurmstepd and job processes of running jobs, so
#    cancel whatever is still queued or running on this private cluster and let it wind down.
if our_pid "$STATE_DIR/slurmctld.pid" slurmctld >/dev/null; then
  jobs=$(squeue -h -t PENDING,RUNNING,SUSPENDED,COMPLETING,CONFIGURING -o '%i' 2>/dev/null || true)
  if [ -n "$jobs" ]; then
    echo "stop_local_slurm.sh: cancelling jobs still on the cluster: $(echo "$jobs" | tr '\n' ' ')"
    # shellcheck disable=SC2086  # one job id per word
    scancel $jobs || true
    for _ in $(seq 1 80); do
      [ -z "$(squeue -h -t RUNNING,COMPLETING,CONFIGURING -o '%i' 2>/dev/null || true)" ] && break
      sleep 0.25
    done
  fi
fi

# 2. The daemons, by pid file: TERM, wait up to 10 s, then KILL the same pids.
pidfiles=("$STATE_DIR/slurmd.pid:slurmd" "$STATE_DIR/slurmctld.pid:slurmctld")
if [ "$KEEP_MUNGE" != 1 ]; then pidfiles+=("$STATE_DIR/munged.started:munged"); fi
pids=()
for entry in "${pidfiles[@]}"; do
  if pid=$(our_pid "${entry%%:*}" "${entry##*:}"); then
    kill -TERM "$pid" 2>/dev/null || true
    pids+=("$pid")
    echo "stop_local_slurm.sh: stopping ${entry##*:} (pid $pid)"
  fi
done
for _ in $(seq 1 40); do
  left=()
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left+=("$pid"); done
  [ "${#left[@]}" = 0 ] && break
  sleep 0.25
done
for pid in "${pids[@]}"; do
  if kill -0 "$pid" 2>/dev/null; then
    echo "stop_local_slurm.sh: pid $pid ignored SIGTERM; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
done
rm -f "$STATE_DIR/slurmd.pid" "$STATE_DIR/slurmctld.pid"
if [ "$KEEP_MUNGE" != 1 ]; then rm -f "$STATE_DIR/munged.started"; fi

# 3. Our configuration, replaced by a stub. The SLURM executor plugin runs `scontrol show config`
#    whenever it is imported, i.e. in every snakemake run and every test that imports snakemake.
#    With the full slurm.conf and no controller that call retries for ~10 s; with no slurm.conf at
#    all the client asks DNS for a controller (SRV record) instead. The stub points it at the
#    stopped controller on localhost with a 1 s message timeout, so it fails at once, locally.
#    The setup script overwrites it (same marker).
if [ -f /etc/slurm/gres.conf ] && grep -qxF "$MARKER" /etc/slurm/gres.conf; then
  rm -f /etc/slurm/gres.conf
fi
if [ -f /etc/slurm/slurm.conf ] && grep -qxF "$MARKER" /etc/slurm/slurm.conf; then
  printf '%s\n' "$MARKER" \
    "# The local cluster is stopped: ci/setup_local_slurm.sh starts it again." \
    "ClusterName=colliderflow-ci" "SlurmctldHost=localhost" "MessageTimeout=1" > /etc/slurm/slurm.conf
fi

if pgrep -x slurmstepd >/dev/null; then
  echo "stop_local_slurm.sh: warning: slurmstepd processes are still running: $(pgrep -x slurmstepd | tr '\n' ' ')" >&2
fi
echo "stop_local_slurm.sh: local SLURM stopped (logs kept in $STATE_DIR/log)"
