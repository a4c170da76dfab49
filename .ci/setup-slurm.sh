#!/usr/bin/env bash
# A real single-node Slurm cluster on this host, for the `slurm`-marked tests.
#
# Installs Debian's slurm-wlm and munge if missing, writes a munge key and a slurm.conf that
# describes this host (its short hostname, CPUs and memory as `slurmd -C` reports them), starts
# munged, slurmctld and slurmd without systemd, and waits until `sinfo` shows the node up.
# Idempotent: a second run with an unchanged config leaves running daemons alone; a changed
# config restarts slurmctld and slurmd. Run as root. Takes seconds once the packages are there.
set -euo pipefail

CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
LOG_DIR=/var/log/slurm
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_PID=/run/munge/munged.pid
START=$(date +%s.%N)

say() { echo "setup-slurm: $*"; }

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        return
    fi
    say "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q slurm-wlm munge >/dev/null
}

pid_alive() {  # pid_alive PIDFILE: the daemon recorded there is running
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

stop_daemon() {  # stop_daemon PIDFILE: stop the daemon recorded there and wait for it to exit
    pid_alive "$1" || return 0
    local pid
    pid=$(cat "$1")
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
}

start_munge() {
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge
    install -d -o munge -g munge -m 0711 /var/lib/munge
    if [ ! -s /etc/munge/munge.key ]; then
        say "creating munge key"
        mungekey --create --keyfile=/etc/munge/munge.key
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    if pid_alive "$MUNGE_PID" && munge -n </dev/null | unmunge >/dev/null 2>&1; then
        return
    fi
    say "starting munged"
    runuser -u munge -- /usr/sbin/munged --force
    for _ in $(seq 50); do munge -n </dev/null | unmunge >/dev/null 2>&1 && return; sleep 0.1; done
    say "munged did not come up"; exit 1
}

write_conf() {  # write_conf FILE: the slurm.conf for this host
    local host node_line
    host=$(hostname -s)
    # "NodeName=<host> CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=..."
    node_line=$(slurmd -C | head -n 1)
    cat >"$1" <<EOF
# Written by .ci/setup-slurm.sh: a single-node cluster on $host for the disco-bench tests.
ClusterName=disco
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits cred_expire seconds before it may start again (default 120).
AuthInfo=cred_expire=10
MpiDefault=none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# React within a second to submissions and finished dependencies (the defaults wait up to a minute).
SchedulerParameters=sched_interval=1,bf_interval=1
JobRequeue=1
# scancel sends SIGTERM (which submitit's job wrapper ignores), then SIGKILL after KillWait s (default 30).
KillWait=5
ReturnToService=2
# No slurmdbd, so no sacct: keep finished jobs in slurmctld for a day so squeue/scontrol see them.
MinJobAge=86400
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
$node_line State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start_slurm() {
    install -d -m 0755 "$CONF_DIR" "$LOG_DIR" /var/spool/slurmctld /var/spool/slurmd
    local fresh
    fresh=$(mktemp)
    write_conf "$fresh"
    if ! cmp -s "$fresh" "$CONF"; then
        say "config changed: (re)starting slurmctld and slurmd"
        stop_daemon "$SLURMD_PID"
        stop_daemon "$CTLD_PID"
        install -m 0644 "$fresh" "$CONF"
    fi
    rm -f "$fresh"
    pid_alive "$CTLD_PID" || { say "starting slurmctld"; /usr/sbin/slurmctld; }
    pid_alive "$SLURMD_PID" || { say "starting slurmd"; /usr/sbin/slurmd; }
}

wait_for_node() {
    local host state
    host=$(hostname -s)
    for _ in $(seq 300); do
        state=$(sinfo -h -n "$host" -o %t 2>/dev/null || true)
        case "$state" in
            idle | mix | alloc | comp) return ;;
            drain* | down* | drng*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 0.1
    done
    say "node $host not up after 30 s (state '${state:-none}'); see $LOG_DIR/"
    exit 1
}

install_packages
start_munge
start_slurm
wait_for_node
say "node $(hostname -s) is $(sinfo -h -n "$(hostname -s)" -o %t) ($(awk "BEGIN {printf \"%.1f\", $(date +%s.%N) - $START}") s)"
