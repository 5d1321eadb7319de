#!/usr/bin/env bash
# Starts a single-node SLURM cluster on this machine, for the SLURM profile's test
# (tests/test_slurm.py). Part of the README's test command and .ci/run, which then run pytest
# with ANNOTATE_REQUIRE_SLURM=1, so that test fails instead of skipping when the cluster is
# not there.
#
# Installs Debian's slurmctld, slurmd, slurm-client and munge with apt-get (when missing),
# writes /etc/slurm/slurm.conf for this host with its real CPU count and memory
# (`slurmd -C`), starts munged, slurmctld and slurmd, and waits until `sinfo` shows the node
# idle; it exits non-zero with the daemons' logs otherwise. Running it again with the
# cluster up does nothing. It refuses to overwrite a slurm.conf it did not write.
#
# The cluster has no accounting database (no slurmdbd): the profile's executor plugin reads
# job states with squeue there (status command `squeue`, MinJobAge below keeps finished jobs
# visible), and every finished job is recorded by the job-completion log
# /var/log/slurm/jobcomp.log, which the test reads. Its one partition, "annotate_ci", is
# not the default partition, so a job reaches it only when the profile names it.
#
# Needs root (or sudo) and apt-get. Takes about 20 s on a fresh Debian 12 machine (apt-get update
# and install included), 0.1 s when the cluster is up.
set -euo pipefail

PARTITION=annotate_ci
CONF=/etc/slurm/slurm.conf
MARK="# written by annotate tools/start_slurm.sh"
LOGS=/var/log/slurm
start=$(date +%s)

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi

say() { echo "start_slurm: $*" >&2; }

fail() {
    say "FAILED: $*"
    for log in "$LOGS/slurmctld.log" "$LOGS/slurmd.log" /var/log/munge/munged.log; do
        if [ -f "$log" ]; then
            say "--- last lines of $log"
            $sudo tail -n 20 "$log" >&2 || true
        fi
    done
    exit 1
}

node_state() {
    command -v sinfo >/dev/null 2>&1 || return 0
    sinfo --noheader --partition "$PARTITION" --format '%T' 2>/dev/null | head -n 1 || true
}

# The daemon whose pid file names a live process.
running() {
    local pidfile="/run/$1.pid"
    [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

# Already up (a second run): nothing to do.
case "$(node_state)" in
    idle|mixed|allocated)
        say "cluster already up (partition $PARTITION: $(node_state))"
        exit 0 ;;
esac

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 \
        || ! command -v munged >/dev/null 2>&1 || ! command -v sbatch >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || fail "no apt-get: install slurmctld, slurmd, slurm-client and munge yourself"
    say "installing slurmctld slurmd slurm-client munge"
    # policy-rc.d: the packages' own service start is skipped (no init system in CI
    # containers); the daemons are started below.
    $sudo apt-get update -qq || say "apt-get update failed; trying the package lists already here"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge >/dev/null || fail "apt-get install failed"
fi

# The node line from the hardware: NodeName=<host> CPUs=.. Boards=.. ... RealMemory=..
node_line=$(slurmd -C | head -n 1)
case "$node_line" in
    NodeName=*RealMemory=*) ;;
    *) fail "slurmd -C printed no node configuration: $node_line" ;;
esac
node=$(echo "$node_line" | sed -e 's/^NodeName=\([^ ]*\).*/\1/')

if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    fail "$CONF exists and was not written by this script: a real cluster's configuration is left alone"
fi

$sudo mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd "$LOGS" /run/munge
$sudo chown slurm:slurm /var/spool/slurmctld "$LOGS"
$sudo chown munge:munge /run/munge
conf=$(cat <<EOF
$MARK: a single-node cluster for the tests.
ClusterName=annotate
SlurmctldHost=$node(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# No cgroups in CI containers: processes tracked by their parent, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# Every finished job, one line each: the scheduler's own record of what ran.
JobCompType=jobcomp/filetxt
JobCompLoc=$LOGS/jobcomp.log
# Finished jobs stay visible to squeue for 10 minutes (the executor's status query).
MinJobAge=600
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
SlurmctldTimeout=30
SlurmdTimeout=30
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$node Default=NO MaxTime=INFINITE State=UP
EOF
)
changed=0
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$conf" ]; then
    echo "$conf" | $sudo tee "$CONF" >/dev/null
    changed=1
fi

# munged: one per machine, run as the munge user; started when no credential round-trips.
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    $sudo runuser -u munge -- /usr/sbin/munged || fail "munged did not start"
fi
munge -n | unmunge >/dev/null 2>&1 || fail "munge credentials do not round-trip (munge -n | unmunge)"

# The daemons read slurm.conf when they start: stop those running on an older one (by the
# pid in their pid file), start those not running.
for daemon in slurmctld slurmd; do
    if [ "$changed" = 1 ] && running "$daemon"; then
        $sudo kill "$(cat "/run/$daemon.pid")" || true
        for _ in $(seq 1 20); do running "$daemon" || break; sleep 0.5; done
    fi
    if ! running "$daemon"; then
        $sudo "/usr/sbin/$daemon" || fail "$daemon did not start"
    fi
done

for _ in $(seq 1 60); do
    state=$(node_state)
    case "$state" in
        idle) say "node $node idle in partition $PARTITION ($(echo "$node_line" | grep -o 'CPUs=[0-9]*'),"\
" $(echo "$node_line" | grep -o 'RealMemory=[0-9]*') MB) after $(( $(date +%s) - start )) s"
              exit 0 ;;
        *drain*|*down*|*fail*)
              # A node that registered while the controller restarted can come up down:
              # resume it once.
              $sudo scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 1
done
fail "node $node is not idle after 60 s (sinfo: '$(node_state)'; $(sinfo --noheader -R 2>&1 | head -n 3))"
