#!/usr/bin/env bash
# Starts a throwaway one-host Slurm cluster (munged, slurmctld, slurmd on 127.0.0.1, free
# ports, state under STATE_DIR) for the srun launch tests, installing slurm-wlm and munge first
# if needed. Prints the environment the tests read; `eval "$(.ci/slurm.sh)"` sets it.
# `.ci/slurm.sh --stop [STATE_DIR]` stops what it started.
# Usage: .ci/slurm.sh [--stop] [STATE_DIR]
set -euo pipefail
stop=0
if [ "${1:-}" = --stop ]; then
  stop=1
  shift
fi
dir=${1:-/tmp/places-slurm}

stop_all() {
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munged.pid"; do
    if [ -f "$pidfile" ]; then
      pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$pidfile"
    fi
  done
}

if [ "$stop" = 1 ]; then
  stop_all
  exit 0
fi

if ! command -v srun >/dev/null || ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  { apt-get install -y -qq slurm-wlm munge ||
    { apt-get update -qq && apt-get install -y -qq slurm-wlm munge; }; } >&2
fi

mkdir -p "$dir"/{state,spool,munge,log}
chmod 755 "$dir"
host=$(hostname -s)
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# munge: a key owned by munge, mode 400, and munged run as munge with its socket in $dir.
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key "$dir/munge"
chmod 400 /etc/munge/munge.key
chmod 700 "$dir/munge"
socket="$dir/munge/munge.socket"
if ! { [ -f "$dir/munged.pid" ] && kill -0 "$(cat "$dir/munged.pid")" 2>/dev/null; }; then
  # munged writes its pid file as user munge: the folder it writes to is munge's.
  runuser -u munge -- /usr/sbin/munged --socket="$socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
    --seed-file="$dir/munge/munged.seed" --force >&2
  for _ in $(seq 1 50); do [ -S "$socket" ] && break; sleep 0.1; done
  cp "$dir/munge/munged.pid" "$dir/munged.pid"
fi

if ! { [ -f "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; }; then
  cpus=$(nproc)
  [ "$cpus" -ge 8 ] || cpus=8
  cat > "$dir/slurm.conf" <<CONF
ClusterName=places-ci
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ReturnToService=2
# The tests start more ranks than this machine has cores (8 slots on any host): slurmd
# takes the configured CPU count instead of draining the node for it.
SlurmdParameters=config_overrides
SchedulerType=sched/builtin
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
  export SLURM_CONF="$dir/slurm.conf"
  /usr/sbin/slurmctld >&2
  /usr/sbin/slurmd >&2
fi
export SLURM_CONF="$dir/slurm.conf"
# Ready when the node takes jobs.
for _ in $(seq 1 100); do
  if sinfo -h -N -o '%t' 2>/dev/null | grep -Eq '^(idle|mix|alloc)'; then
    ready=1
    break
  fi
  sleep 0.2
done
if [ "${ready:-0}" != 1 ]; then
  echo "slurm did not come up; see $dir/log" >&2
  sinfo >&2 || true
  exit 1
fi
echo "export SLURM_CONF=$dir/slurm.conf"
