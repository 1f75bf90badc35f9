#!/usr/bin/env bash
# Bring up a single-node SLURM cluster on this machine from Debian's packages, as root, without systemd.
#
# What it does (idempotent: a second call with the cluster up only checks that the node is idle):
#   1. installs slurmctld, slurmd, slurm-client and munge with apt when any is missing (apt-get update once),
#      and moves the client commands (sinfo, scontrol, sbatch, srun, ...) out of the default PATH into a private
#      prefix, $MGFM_SLURM_PREFIX/bin (default /opt/mgfm-slurm/bin), with dpkg-divert, so that package upgrades
#      keep them there. Only the SLURM tests put that folder on their PATH: nothing else on this machine sees a
#      SLURM client. (Snakemake's SLURM executor plugin, installed with mgfm, runs `scontrol show config` at
#      every Snakemake start when `sinfo` is on the PATH; without a running controller that costs ~10 s each.)
#   2. writes a minimal /etc/slurm/slurm.conf for one node (this machine's CPUs, most of its memory) and
#      refuses to touch a slurm.conf that this script did not write;
#   3. starts munged (as the munge user), slurmctld and slurmd, records their process ids in
#      $MGFM_SLURM_STATE/pids (default /var/lib/mgfm-slurm) for scripts/slurm/down.sh;
#   4. waits until the node is idle (at most MGFM_SLURM_WAIT seconds, default 30).
# Exit status: 0 when the cluster is up and the node idle, 2 when it cannot run here (not root, no apt,
# foreign slurm.conf), 1 for any other failure (daemon logs are in the state directory).
set -euo pipefail

STATE=${MGFM_SLURM_STATE:-/var/lib/mgfm-slurm}
PREFIX=${MGFM_SLURM_PREFIX:-/opt/mgfm-slurm}
WAIT=${MGFM_SLURM_WAIT:-30}
CONF=/etc/slurm/slurm.conf
MARKER="# written by mgfm scripts/slurm/up.sh"
PACKAGES=(slurmctld slurmd slurm-client munge)

say() { echo "slurm-up: $*" >&2; }
cannot() { say "$*"; exit 2; }

[[ $(id -u) -eq 0 ]] || cannot "needs root (starts munged, slurmctld and slurmd)"

alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

node_state() { "$PREFIX/bin/sinfo" -h -n localhost -o '%t' 2>/dev/null | head -n1 || true; }

# the client commands of slurm-client, diverted from /usr/bin to $PREFIX/bin (dpkg-divert --rename moves an
# installed file, and makes dpkg install later versions there); idempotent
private_clients() {
    mkdir -p "$PREFIX/bin"
    local file name
    while read -r file; do
        name=${file##*/}
        [[ $(dpkg-divert --truename "$file") == "$PREFIX/bin/$name" ]] && continue
        dpkg-divert --quiet --package mgfm-slurm --divert "$PREFIX/bin/$name" --rename --add "$file"
    done < <(dpkg -L slurm-client | grep -E '^/usr/bin/[^/]+$')
    [[ -x $PREFIX/bin/sinfo ]] || { say "no sinfo in $PREFIX/bin after diverting slurm-client's commands"; return 1; }
}

wait_idle() {
    local deadline=$((SECONDS + WAIT)) state=""
    while ((SECONDS < deadline)); do
        state=$(node_state)
        if [[ $state == idle || $state == mix || $state == alloc ]]; then
            say "node localhost is $state"
            return 0
        fi
        sleep 0.2
    done
    say "node localhost not idle after ${WAIT}s (state '${state:-unknown}'); logs: $STATE/*.log"
    return 1
}

# ---- already up? ---------------------------------------------------------------------------------------
if [[ -f $STATE/pids ]] && dpkg-query -W -f='${Status}' slurm-client 2>/dev/null | grep -q "install ok installed"; then
    private_clients
fi
if [[ -f $STATE/pids ]]; then
    # shellcheck disable=SC1091
    source "$STATE/pids"
    if alive "${MUNGED_PID:-}" && alive "${SLURMCTLD_PID:-}" && alive "${SLURMD_PID:-}"; then
        say "already running (pids $MUNGED_PID $SLURMCTLD_PID $SLURMD_PID)"
        wait_idle
        exit $?
    fi
    say "stale state in $STATE/pids: restarting"
    "$(dirname "$0")/down.sh" || true
fi

# ---- install -------------------------------------------------------------------------------------------
mkdir -p "$STATE"
missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    command -v apt-get >/dev/null || cannot "apt-get not found; install ${missing[*]} by hand"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >"$STATE/apt.log" 2>&1 || { cannot "apt-get update failed (see $STATE/apt.log)"; }
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$STATE/apt.log" 2>&1 \
        || cannot "apt-get install ${missing[*]} failed (see $STATE/apt.log)"
fi
private_clients

# ---- configuration -------------------------------------------------------------------------------------
mkdir -p "$STATE/ctld" "$STATE/d" /etc/slurm
if [[ -f $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
    cannot "$CONF exists and was not written by this script: not touching a real cluster's configuration"
fi
cpus=$(nproc)
mem_total_mb=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
real_mb=$((mem_total_mb * 85 / 100))
cat >"$CONF.tmp" <<CONF
$MARKER: a single-node test cluster
ClusterName=mgfm
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# squeue must still see finished jobs when the executor plugin checks their state (> 3x its check interval)
MinJobAge=300
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mb State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
mv "$CONF.tmp" "$CONF"

# ---- daemons -------------------------------------------------------------------------------------------
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chmod 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi
rm -f /run/munge/munged.pid "$STATE"/slurmctld.pid "$STATE"/slurmd.pid
runuser -u munge -- /usr/sbin/munged --force
wait_pidfile() { # file -> pid once the daemon wrote it
    local deadline=$((SECONDS + 10))
    while ((SECONDS < deadline)); do
        [[ -s $1 ]] && { cat "$1"; return 0; }
        sleep 0.05
    done
    say "no pid file $1 after 10s"
    return 1
}
MUNGED_PID=$(wait_pidfile /run/munge/munged.pid)
# -i: ignore state left by a previous run of this test cluster (jobs, node states)
/usr/sbin/slurmctld -i
SLURMCTLD_PID=$(wait_pidfile "$STATE/slurmctld.pid")
/usr/sbin/slurmd -N localhost
SLURMD_PID=$(wait_pidfile "$STATE/slurmd.pid")
printf 'MUNGED_PID=%s\nSLURMCTLD_PID=%s\nSLURMD_PID=%s\n' "$MUNGED_PID" "$SLURMCTLD_PID" "$SLURMD_PID" >"$STATE/pids"
say "started munged $MUNGED_PID, slurmctld $SLURMCTLD_PID, slurmd $SLURMD_PID"
wait_idle
