#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for the batch test and for trying the
# sbatch array of deploy/slurm/ by hand. Debian's slurmctld, slurmd and munge, configured on
# 127.0.0.1, everything (key, sockets, state, logs) inside one folder:
#
#   scripts/slurm-local.sh start DIR   # prints `export SLURM_CONF=DIR/slurm.conf`
#   SLURM_CONF=DIR/slurm.conf sbatch --array=0-3 deploy/slurm/reelsmith-batch.sbatch ...
#   scripts/slurm-local.sh stop DIR
#
# `start` installs slurm-wlm and munge when they are missing (apt-get, as root). It needs
# root: slurmd runs jobs as their user, and SlurmUser=root keeps the setup to one account.
# Exit status 77 means "cannot run here" (not root, no apt-get, packages not installable),
# with the reason on stderr; tests skip on it unless REELSMITH_REQUIRE_SLURM=1.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: $0 start|stop DIR" >&2
  exit 2
fi

cannot() {
  echo "slurm-local: cannot start a Slurm cluster here: $*" >&2
  exit 77
}

stop() {
  for d in slurmd slurmctld munged; do
    if [ -s "$dir/$d.pid" ]; then
      pid=$(cat "$dir/$d.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$dir/$d.pid"
    fi
  done
}

if [ "$cmd" = stop ]; then
  stop
  exit 0
fi
[ "$cmd" = start ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

[ "$(id -u)" -eq 0 ] || cannot "it needs root (slurmd runs jobs as their user)"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
   || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
  command -v apt-get >/dev/null || cannot "slurm-wlm and munge are not installed and there is no apt-get"
  echo "slurm-local: installing slurm-wlm and munge" >&2
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge; } \
    >"${TMPDIR:-/tmp}/slurm-local-apt.log" 2>&1 \
    || cannot "apt-get install slurm-wlm munge failed (see ${TMPDIR:-/tmp}/slurm-local-apt.log)"
fi
id munge >/dev/null 2>&1 || cannot "the munge user does not exist (the munge package creates it)"

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
stop
rm -rf "$dir/munge" "$dir/ctld" "$dir/spool"
mkdir -p "$dir/munge" "$dir/ctld" "$dir/spool"

# munge: a fresh key, munged as the munge user, its socket inside DIR.
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chown -R munge: "$dir/munge"
chmod 700 "$dir/munge"
chmod 400 "$dir/munge/munge.key"
# munged refuses a socket folder others may write to, and DIR's parents may be /tmp.
runuser -u munge -- munged --key-file="$dir/munge/munge.key" \
  --socket="$dir/munge/munge.socket" --pid-file="$dir/munge/munged.pid" \
  --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" --force \
  || cannot "munged did not start (see $dir/munge/munged.log)"
cp "$dir/munge/munged.pid" "$dir/munged.pid"

# Two free TCP ports on 127.0.0.1 for slurmctld and slurmd.
read -r ctld_port d_port < <(python3 - <<'EOF'
import socket
ports = []
socks = []
for _ in range(2):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
    ports.append(s.getsockname()[1])
print(*ports)
EOF
)
host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
cat >"$dir/slurm.conf" <<EOF
ClusterName=reelsmith-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -c -f "$SLURM_CONF" || cannot "slurmctld did not start (see $dir/slurmctld.log)"
slurmd -f "$SLURM_CONF" || cannot "slurmd did not start (see $dir/slurmd.log)"
for _ in $(seq 100); do
  if sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 0.2
done
sinfo -N >&2 || true
cannot "the node did not become idle within 20 s (see $dir/slurmctld.log and $dir/slurmd.log)"
