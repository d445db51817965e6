#!/usr/bin/env bash
# A real single-node Slurm for the Slurm executor's tests (tests/slurm_executor.rs), without systemd.
#
#   scripts/slurm-test.sh            install what is missing, start munged + slurmctld + slurmd, wait for the
#                                    node to be idle, run the Slurm tests (SPATIA_REQUIRE_SLURM=1), stop the
#                                    daemons it started (also on failure or Ctrl-C); exit status of the tests
#   scripts/slurm-test.sh start      only start (prints `export SLURM_CONF=…` for a shell to eval)
#   scripts/slurm-test.sh stop       stop the daemons a `start` left running
#
# Everything lives under $SPATIA_SLURM_DIR (default /tmp/spatia-slurm): slurm.conf (one node named
# `hostname -s`, proctrack/linuxproc, task/none, no cgroups, select/cons_tres, no accounting), state and spool
# directories, logs, pid files. The machine's own /etc/slurm is never written: clients find the test
# cluster through SLURM_CONF. Needs root (apt-get, munged as the munge user, slurmd).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${SPATIA_SLURM_DIR:-/tmp/spatia-slurm}
CONF=$DIR/slurm.conf
export SLURM_CONF=$CONF
HOST=$(hostname -s)
say() { echo "slurm-test: $*" >&2; }

install() {
    local missing=()
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
        || missing+=(slurm-wlm)
    command -v munged >/dev/null || missing+=(munge)
    if ((${#missing[@]})); then
        say "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        say "creating /etc/munge/munge.key"
        if command -v mungekey >/dev/null; then mungekey --create --force; else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
        chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    fi
}

write_conf() {
    mkdir -p "$DIR/ctld" "$DIR/slurmd" "$DIR/log"
    local cpus mem
    # more task slots than cores (config_overrides): the test jobs are short and mostly wait on I/O and Slurm
    cpus=$(( $(nproc) * 4 ))
    mem=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10))
    cat >"$CONF" <<CONF
# written by scripts/slurm-test.sh: a single-node test cluster
ClusterName=spatia-test
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
SlurmctldPort=${SPATIA_SLURM_PORT:-16817}
SlurmdPort=$((${SPATIA_SLURM_PORT:-16817} + 1))
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/slurmd
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
MinJobAge=300
MaxArraySize=1001
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
}

# a live process (not a zombie: in a container without an init that reaps, stopped daemons stay as zombies)
pid_alive() {
    [[ -s $1 ]] || return 1
    local p
    p=$(cat "$1")
    [[ $p =~ ^[0-9]+$ && -r /proc/$p/stat ]] && [[ $(awk '{print $3}' "/proc/$p/stat") != Z ]]
}

start() {
    if [[ $(id -u) != 0 ]]; then
        say "needs root (apt-get, munged as the munge user, slurmd); run it as root or with sudo"
        return 1
    fi
    install
    write_conf
    # munged: its socket directory, run as the munge user (as the Debian unit does)
    if ! pid_alive /run/munge/munged.pid; then
        mkdir -p /run/munge && chown munge:munge /run/munge && chmod 0755 /run/munge
        say "starting munged"
        runuser -u munge -- /usr/sbin/munged
        echo started >"$DIR/munged.ours"
    fi
    # -c: no state from an earlier test cluster (jobs, a node left down)
    pid_alive "$DIR/slurmctld.pid" || { say "starting slurmctld"; slurmctld -c -f "$CONF"; }
    pid_alive "$DIR/slurmd.pid" || { say "starting slurmd"; slurmd -f "$CONF"; }
    local state=""
    for _ in $(seq 1 60); do
        state=$(sinfo -h -n "$HOST" -o '%T' 2>/dev/null || true)
        [[ $state == idle* ]] && { say "node $HOST is idle"; return 0; }
        sleep 1
    done
    say "node $HOST not idle after 60 s (state: ${state:-unknown}); logs in $DIR/log"
    tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    return 1
}

stop() {
    # cancel what the tests left queued, then stop the daemons this script started
    pid_alive "$DIR/slurmctld.pid" && scancel -u "$(id -un)" 2>/dev/null || true
    for p in "$DIR/slurmd.pid" "$DIR/slurmctld.pid"; do
        if pid_alive "$p"; then kill "$(cat "$p")" 2>/dev/null || true; fi
    done
    for p in "$DIR/slurmd.pid" "$DIR/slurmctld.pid"; do
        for _ in $(seq 1 20); do pid_alive "$p" || break; sleep 0.5; done
    done
    if [[ -f $DIR/munged.ours ]] && pid_alive /run/munge/munged.pid; then
        kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
        rm -f "$DIR/munged.ours"
    fi
    say "stopped"
}

case "${1:-test}" in
start) start && echo "export SLURM_CONF=$CONF" ;;
stop) stop ;;
test)
    trap stop EXIT
    start
    SPATIA_REQUIRE_SLURM=1 ${CARGO:-cargo} test --release --locked ${FEATURES:-} --test slurm_executor \
        -- --test-threads=1
    ;;
*) echo "usage: $0 [test|start|stop]" >&2; exit 2 ;;
esac
