#!/usr/bin/env bash
# Tear down the single-node SLURM cluster that scripts/slurm/up.sh started: stops exactly the process ids it
# recorded (slurmd, slurmctld, munged), nothing found by name. Safe to call when nothing is running.
set -euo pipefail

STATE=${MGFM_SLURM_STATE:-/var/lib/mgfm-slurm}
say() { echo "slurm-down: $*" >&2; }

if [[ ! -f $STATE/pids ]]; then
    say "nothing recorded in $STATE/pids: nothing to stop"
    exit 0
fi
# shellcheck disable=SC1091
source "$STATE/pids"
for name in SLURMD_PID SLURMCTLD_PID MUNGED_PID; do
    pid=${!name:-}
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || continue
    kill -TERM "$pid"
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name $pid ignored SIGTERM for 10s: SIGKILL"
        kill -KILL "$pid" || true
    fi
    say "stopped ${name%_PID} ($pid)"
done
rm -f "$STATE/pids"
