#!/usr/bin/env bash
# Stop the XRootD server started by ci/setup_xrootd.sh: the process in its pid file, if it is still
# xrootd (nothing found by name). Safe to call twice, or when setup never ran (for an EXIT trap).
set -euo pipefail
STATE_DIR=${XROOTD_CI_DIR:-/tmp/colliderflow-xrootd}
pidfile=$STATE_DIR/run/colliderflow-ci/xrootd.pid   # all.pidpath + the instance name (-n)
[ -f "$pidfile" ] || { echo "stop_xrootd.sh: no $pidfile; nothing to stop"; exit 0; }
pid=$(cat "$pidfile")
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = xrootd ]; then
  kill "$pid"
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
fi
rm -f "$pidfile"
echo "stopped xrootd (data left in $STATE_DIR/data)"
