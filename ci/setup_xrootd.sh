#!/usr/bin/env bash
# Start a real XRootD data server on localhost, so that the workflow can be tested with its inputs and
# outputs on XRootD storage (snakemake-storage-plugin-xrootd), the way EOS users run it.
#
#   bash ci/setup_xrootd.sh        # Debian 12, as root; no systemd needed
#   bash ci/stop_xrootd.sh         # stops exactly the server this script started
#
# The server exports XROOTD_CI_DIR/data as / (so root://localhost:PORT//colliderflow/... is
# XROOTD_CI_DIR/data/colliderflow/...), with no authentication: on a site (EOS) authentication is the
# site's business (Kerberos, tokens, x509), not the workflow's. It runs as an unprivileged user (xrootd
# refuses to run as root), writes its pid file, and answers `xrdfs localhost:PORT ls /` before this returns.
#
# Environment:
#   XROOTD_CI_DIR   state, data, pid file and logs (default /tmp/colliderflow-xrootd)
#   XROOTD_CI_PORT  the port (default 1094)
set -euo pipefail

STATE_DIR=${XROOTD_CI_DIR:-/tmp/colliderflow-xrootd}
PORT=${XROOTD_CI_PORT:-1094}
t0=$(date +%s.%N)

if ! command -v xrootd >/dev/null || ! command -v xrdfs >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends xrootd-server xrootd-client
fi
t1=$(date +%s.%N)

# The user the server runs as: Debian's package creates `xrootd`; fall back to nobody.
RUN_AS=xrootd
id -u "$RUN_AS" >/dev/null 2>&1 || RUN_AS=nobody

pidfile=$STATE_DIR/run/colliderflow-ci/xrootd.pid   # all.pidpath + the instance name (-n)
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null \
   && [ "$(cat "/proc/$(cat "$pidfile")/comm" 2>/dev/null)" = xrootd ]; then
  echo "xrootd already running (pid $(cat "$pidfile"), port $PORT, data in $STATE_DIR/data)"
  exit 0
fi

# A plain TCP connect: `xrdfs` on a port where nothing listens retries for minutes before it gives up.
listening() { timeout 5 bash -c ">/dev/tcp/localhost/$PORT" 2>/dev/null; }
if listening; then
  echo "port $PORT is already taken by a server that this script did not start; set XROOTD_CI_PORT" >&2
  exit 1
fi
mkdir -p "$STATE_DIR"/data "$STATE_DIR"/run "$STATE_DIR"/log "$STATE_DIR"/admin
cat > "$STATE_DIR"/xrootd.cfg <<CFG
# Written by colliderflow ci/setup_xrootd.sh
all.role server
all.export / writable
oss.localroot $STATE_DIR/data
xrd.port $PORT
all.adminpath $STATE_DIR/admin
all.pidpath $STATE_DIR/run
CFG
chown -R "$RUN_AS" "$STATE_DIR"/data "$STATE_DIR"/run "$STATE_DIR"/log "$STATE_DIR"/admin

# -b: run in the background; -l: log file; -R: drop root privileges to this user.
xrootd -b -l "$STATE_DIR"/log/xrootd.log -c "$STATE_DIR"/xrootd.cfg -R "$RUN_AS" -n colliderflow-ci
for _ in $(seq 1 50); do
  if [ -f "$pidfile" ] && listening && xrdfs "localhost:$PORT" ls / >/dev/null 2>&1; then break; fi
  sleep 0.2
done
if ! xrdfs "localhost:$PORT" ls / >/dev/null 2>&1; then
  echo "xrootd did not answer on localhost:$PORT; its log:" >&2
  tail -n 40 "$STATE_DIR"/log/colliderflow-ci/xrootd.log >&2 || true
  exit 1
fi
# Prove it writes and reads back.
probe=$(mktemp)
echo ok > "$probe"
xrdcp -s -f "$probe" "root://localhost:$PORT//ci-probe.txt"
[ "$(xrdfs "localhost:$PORT" cat /ci-probe.txt)" = ok ]
xrdfs "localhost:$PORT" rm /ci-probe.txt
rm -f "$probe"
t2=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v p="$PORT" -v d="$STATE_DIR" \
  'BEGIN{printf "local XRootD up in %.1fs (packages %.1fs): root://localhost:%s// = %s/data\n", c-a, b-a, p, d}'
