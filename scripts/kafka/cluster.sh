#!/usr/bin/env bash
# scripts/kafka/cluster.sh: an N-node Apache Kafka (KRaft) cluster on
# 127.0.0.1 behind Toxiproxy, for kaffe's real-cluster fault tier
# (tests/cluster). Same jars and cache as scripts/kafka/start.sh (jars.sh:
# KAFFE_KAFKA_VERSION, 3.9.1 by default or 4.1.1).
#
#   cluster.sh start [NODES]            starts NODES nodes (default 3, each
#                                       broker + controller) and one
#                                       toxiproxy-server; prints the path of
#                                       the env file as the last line
#   cluster.sh stop ENV                 stops everything, removes the directory
#   cluster.sh node ENV ID ACTION       term (SIGTERM, waits for the exit),
#                                       kill (SIGKILL), freeze (SIGSTOP),
#                                       thaw (SIGCONT), start, restart (term +
#                                       start)
#   cluster.sh wait ENV ID [SECONDS]    until node ID serves: it answers
#                                       metadata on its own listener, lists
#                                       every live node, and every partition
#                                       it replicates has its full ISR
#   cluster.sh wait-all ENV [SECONDS]   wait for every node
#   cluster.sh controller ENV           the active KRaft controller's node id
#   cluster.sh leader ENV TOPIC PART    the partition's leader's node id
#   cluster.sh coordinator ENV GROUP    the group coordinator's node id
#   cluster.sh toxic ENV ID NAME TYPE STREAM [KEY=VALUE...]
#                                       adds a Toxiproxy toxic to node ID's
#                                       proxy (TYPE latency, bandwidth,
#                                       reset_peer, timeout, ...; STREAM
#                                       upstream or downstream)
#   cluster.sh untoxic ENV ID NAME      removes it
#   cluster.sh heal ENV                 removes every toxic (Toxiproxy /reset)
#   cluster.sh restore ENV [SECONDS]    every node thawed, started if it is
#                                       down, every toxic removed, then
#                                       wait-all (after a scenario that failed
#                                       half-way, too)
#
# Every node listens on three ports: CLIENT (advertised as its Toxiproxy
# proxy's port, so every client connection after the bootstrap crosses the
# proxy), INTERNAL (replication, direct) and CONTROLLER (KRaft, direct).
# Topic defaults: replication factor min(3, NODES), min.insync.replicas 2
# (1 below 3 nodes), unclean leader election off, no automatic topic
# creation. Brokers are fenced 4 s after their last heartbeat.
#
# The env file (KEY=VALUE): KAFFE_CLUSTER_DIR, KAFFE_CLUSTER_NODES,
# KAFFE_CLUSTER_KAFKA_VERSION, KAFFE_CLUSTER_BOOTSTRAP (the proxies), KAFFE_CLUSTER_DIRECT_BOOTSTRAP (the
# CLIENT listeners, bypassing Toxiproxy), KAFFE_CLUSTER_TOXIPROXY (API
# host:port), KAFFE_CLUSTER_TOXIPROXY_PID, and per node i:
# KAFFE_CLUSTER_NODE_<i>_PID (updated by start/restart), _PORT (CLIENT),
# _PROXY_PORT, _PROXY (the proxy's name), _INTERNAL_PORT, _CONTROLLER_PORT,
# _LOG. Node processes run in their own session (setsid); stop ends them by
# the recorded pids only.
#
# Environment: KAFFE_CACHE (jar and Toxiproxy cache), KAFFE_TOXIPROXY (path
# of toxiproxy-server; default the cache's, built by scripts/setup.sh
# --cluster), KAFFE_KAFKA_START_TIMEOUT (seconds per node start, default 180),
# KAFFE_KAFKA_HEAP (default 384m).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=logging.sh
. "$here/logging.sh"
cache=${KAFFE_CACHE:-$HOME/.cache/kaffe}
start_timeout=${KAFFE_KAFKA_START_TIMEOUT:-180}

log() { echo "cluster: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- env file ------------------------------------------------------------------
env_get() { # file key
    sed -n "s/^$2=//p" "$1" | tail -1
}
env_set() { # file key value: replaces the line (the file is only ours)
    local tmp
    tmp=$(mktemp "$1.XXXXXX")
    grep -v "^$2=" "$1" >"$tmp" || true
    echo "$2=$3" >>"$tmp"
    mv "$tmp" "$1"
}
load_env() { # file
    env_file=${1:?env file}
    [ -f "$env_file" ] || die "no env file $env_file"
    dir=$(env_get "$env_file" KAFFE_CLUSTER_DIR)
    nodes=$(env_get "$env_file" KAFFE_CLUSTER_NODES)
    toxi=$(env_get "$env_file" KAFFE_CLUSTER_TOXIPROXY)
    # Restarts use the jars the cluster started with.
    KAFFE_KAFKA_VERSION=$(env_get "$env_file" KAFFE_CLUSTER_KAFKA_VERSION)
    export KAFFE_KAFKA_VERSION
}
node_key() { env_get "$env_file" "KAFFE_CLUSTER_NODE_$1_$2"; }
check_id() {
    [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le "$nodes" ] || die "no node $1 (1..$nodes)"
}

java_opts() { # node dir (the logging option: $dir/log-option, written at start)
    echo "-Xmx${KAFFE_KAFKA_HEAP:-384m} -Xms64m -XX:+UseSerialGC -XX:TieredStopAtLevel=1"
    echo "-Xshare:auto -Djava.awt.headless=true $(cat "$dir/log-option")"
}

jars_dir() { # sets jars (jars.sh resolves them on first use)
    jars=$(bash "$here/jars.sh") || die "no Kafka jars"
}

# Starts node id's JVM (its configuration and data exist); records its pid.
node_launch() { # id
    local id=$1 ndir=$dir/node-$1 pid
    jars_dir
    # shellcheck disable=SC2046 # the options are words
    setsid java $(java_opts) -cp "$jars/*" kafka.Kafka "$ndir/server.properties" \
        >>"$ndir/server.log" 2>&1 </dev/null &
    pid=$!
    env_set "$env_file" "KAFFE_CLUSTER_NODE_${id}_PID" "$pid"
    echo "$pid" >"$ndir/pid"
}

# Waits until node id's current process logged "Kafka Server started" since
# its launch (the log is appended to across restarts: count the lines).
node_wait_started() { # id lines-before
    local id=$1 before=$2 ndir=$dir/node-$1 pid deadline
    pid=$(node_key "$id" PID)
    deadline=$(($(date +%s) + start_timeout))
    until tail -n +"$((before + 1))" "$ndir/server.log" | grep -q "Kafka Server started"; do
        kill -0 "$pid" 2>/dev/null || { tail -20 "$ndir/server.log" >&2; die "node $id exited during start-up"; }
        [ "$(date +%s)" -lt "$deadline" ] || die "node $id: no \"Kafka Server started\" within ${start_timeout}s"
        sleep 0.2
    done
}

node_signal_wait() { # id signal seconds: signals and waits for the exit
    local id=$1 sig=$2 secs=$3 pid
    pid=$(node_key "$id" PID)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -CONT "$pid" 2>/dev/null || true # a frozen node cannot act on TERM
    kill "-$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 1 $((secs * 10))); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "node $id (pid $pid) did not exit on SIG$sig within ${secs}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}

# --- metadata (kcat, librdkafka's own client) ------------------------------------
metadata() { # broker-address: JSON metadata, or nothing
    timeout 15 kcat -L -J -b "$1" -m 5 -X topic.metadata.refresh.interval.ms=-1 2>/dev/null || true
}

# --- Toxiproxy API -------------------------------------------------------------------
toxi_call() { # method path [json]
    local out code
    out=$(mktemp)
    code=$(curl -s -o "$out" -w '%{http_code}' -X "$1" -H 'Content-Type: application/json' \
        ${3:+--data "$3"} "http://$toxi$2") || code=000
    if [ "${code:0:1}" != 2 ]; then
        log "toxiproxy $1 $2: HTTP $code: $(cat "$out")"
        rm -f "$out"
        return 1
    fi
    cat "$out"
    rm -f "$out"
}

cmd_start() {
    nodes=${1:-3}
    [[ "$nodes" =~ ^[0-9]+$ ]] && [ "$nodes" -ge 1 ] || die "bad node count $nodes"
    command -v java >/dev/null || die "java not found (scripts/setup.sh --cluster)"
    command -v kcat >/dev/null || die "kcat not found (scripts/setup.sh)"
    command -v curl >/dev/null || die "curl not found (scripts/setup.sh --cluster)"
    command -v python3 >/dev/null || die "python3 not found"
    local toxi_bin=${KAFFE_TOXIPROXY:-$cache/toxiproxy-2.5.0/toxiproxy-server}
    [ -x "$toxi_bin" ] || die "no $toxi_bin (bash scripts/setup.sh --cluster builds it)"
    jars_dir

    dir=$(mktemp -d "${TMPDIR:-/tmp}/kaffe-cluster.XXXXXX")
    env_file=$dir/cluster.env
    : >"$env_file"
    cluster_started=0
    # shellcheck disable=SC2064 # expand now
    trap "[ \${cluster_started:-0} -eq 1 ] || { bash '$here/cluster.sh' stop '$env_file' >/dev/null 2>&1 || true; }" EXIT

    # 4 ports per node and the Toxiproxy API, all bound at once (distinct).
    local ports
    read -r -a ports < <(python3 - "$((nodes * 4 + 1))" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
)
    toxi=127.0.0.1:${ports[$((nodes * 4))]}
    local i voters="" bootstrap="" direct=""
    for i in $(seq 1 "$nodes"); do
        local b=$(((i - 1) * 4))
        local c=${ports[$b]} p=${ports[$((b + 1))]} n=${ports[$((b + 2))]} k=${ports[$((b + 3))]}
        voters+="${voters:+,}$i@127.0.0.1:$k"
        bootstrap+="${bootstrap:+,}127.0.0.1:$p"
        direct+="${direct:+,}127.0.0.1:$c"
        cat >>"$env_file" <<ENV
KAFFE_CLUSTER_NODE_${i}_PORT=$c
KAFFE_CLUSTER_NODE_${i}_PROXY_PORT=$p
KAFFE_CLUSTER_NODE_${i}_PROXY=kafka-$i
KAFFE_CLUSTER_NODE_${i}_INTERNAL_PORT=$n
KAFFE_CLUSTER_NODE_${i}_CONTROLLER_PORT=$k
KAFFE_CLUSTER_NODE_${i}_LOG=$dir/node-$i/server.log
ENV
    done
    cat >>"$env_file" <<ENV
KAFFE_CLUSTER_DIR=$dir
KAFFE_CLUSTER_NODES=$nodes
KAFFE_CLUSTER_KAFKA_VERSION=${KAFFE_KAFKA_VERSION:-3.9.1}
KAFFE_CLUSTER_BOOTSTRAP=$bootstrap
KAFFE_CLUSTER_DIRECT_BOOTSTRAP=$direct
KAFFE_CLUSTER_TOXIPROXY=$toxi
ENV

    # Toxiproxy first: the proxies exist before any client learns their ports.
    setsid "$toxi_bin" -host 127.0.0.1 -port "${toxi#*:}" >"$dir/toxiproxy.log" 2>&1 </dev/null &
    env_set "$env_file" KAFFE_CLUSTER_TOXIPROXY_PID $!
    local deadline=$(($(date +%s) + 30))
    until toxi_call GET /version >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || die "toxiproxy-server did not answer within 30s"
        sleep 0.1
    done
    for i in $(seq 1 "$nodes"); do
        toxi_call POST /proxies "{\"name\":\"kafka-$i\",\"listen\":\"127.0.0.1:$(node_key "$i" PROXY_PORT)\",\"upstream\":\"127.0.0.1:$(node_key "$i" PORT)\",\"enabled\":true}" >/dev/null ||
            die "creating proxy kafka-$i"
    done

    local rf=$((nodes < 3 ? nodes : 3)) isr=$((nodes < 3 ? 1 : 2))
    kafka_log_config "$dir" "$jars" state.change.logger >"$dir/log-option"
    local cluster_id
    cluster_id=$(bash "$here/cluster_id.sh")
    for i in $(seq 1 "$nodes"); do
        local ndir=$dir/node-$i
        mkdir -p "$ndir"
        cat >"$ndir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
controller.listener.names=CONTROLLER
listeners=CLIENT://127.0.0.1:$(node_key "$i" PORT),INTERNAL://127.0.0.1:$(node_key "$i" INTERNAL_PORT),CONTROLLER://127.0.0.1:$(node_key "$i" CONTROLLER_PORT)
advertised.listeners=CLIENT://127.0.0.1:$(node_key "$i" PROXY_PORT),INTERNAL://127.0.0.1:$(node_key "$i" INTERNAL_PORT)
listener.security.protocol.map=CLIENT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=INTERNAL
log.dirs=$ndir/data
num.partitions=6
default.replication.factor=$rf
min.insync.replicas=$isr
unclean.leader.election.enable=false
auto.create.topics.enable=false
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
group.initial.rebalance.delay.ms=0
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=4000
replica.lag.time.max.ms=10000
num.network.threads=2
num.io.threads=2
num.replica.fetchers=1
background.threads=2
log.cleaner.enable=false
PROPS
        # shellcheck disable=SC2046
        java $(java_opts) -cp "$jars/*" kafka.tools.StorageTool format -t "$cluster_id" \
            -c "$ndir/server.properties" >"$ndir/format.log" 2>&1 ||
            { cat "$ndir/format.log" >&2; die "StorageTool format of node $i failed"; }
        : >"$ndir/server.log"
    done
    local t0=$SECONDS
    for i in $(seq 1 "$nodes"); do node_launch "$i"; done
    for i in $(seq 1 "$nodes"); do node_wait_started "$i" 0; done
    for i in $(seq 1 "$nodes"); do cmd_wait "$env_file" "$i" "$start_timeout"; done
    cluster_started=1
    log "$nodes nodes serving after $((SECONDS - t0)) s; bootstrap $bootstrap (proxies), toxiproxy $toxi, dir $dir"
    echo "$env_file"
}

cmd_stop() {
    load_env "$1"
    case "$dir" in
        "${TMPDIR:-/tmp}"/kaffe-cluster.*) ;;
        *) die "refusing to remove unexpected directory '$dir'" ;;
    esac
    local i pids=()
    for i in $(seq 1 "${nodes:-0}"); do
        local pid
        pid=$(node_key "$i" PID)
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill -CONT "$pid" 2>/dev/null || true
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done
    # All at once: a node's controlled shutdown needs the others' quorum, so
    # the last ones may not finish it; 20 s, then SIGKILL.
    local deadline=$(($(date +%s) + 20)) pid
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    pid=$(env_get "$env_file" KAFFE_CLUSTER_TOXIPROXY_PID)
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
    rm -rf "$dir"
}

cmd_node() { # env id action
    load_env "$1"
    local id=$2 action=$3 pid
    check_id "$id"
    pid=$(node_key "$id" PID)
    case "$action" in
        term) node_signal_wait "$id" TERM 60 ;;
        kill) node_signal_wait "$id" KILL 10 ;;
        freeze) kill -STOP "$pid" ;;
        thaw) kill -CONT "$pid" ;;
        start | restart)
            [ "$action" = start ] || node_signal_wait "$id" TERM 60
            ! kill -0 "$pid" 2>/dev/null || die "node $id (pid $pid) is still running"
            local before
            before=$(wc -l <"$dir/node-$id/server.log")
            node_launch "$id"
            node_wait_started "$id" "$before"
            ;;
        *) die "unknown node action '$action' (term, kill, freeze, thaw, start, restart)" ;;
    esac
}

# Node id serves: its own CLIENT listener answers metadata that lists every
# running node and shows every partition it replicates with its full ISR.
cmd_wait() { # env id [seconds]
    load_env "$1"
    local id=$2 secs=${3:-120} deadline
    check_id "$id"
    deadline=$(($(date +%s) + secs))
    local running="" i
    for i in $(seq 1 "$nodes"); do
        local pid
        pid=$(node_key "$i" PID)
        [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && running+="$i "
    done
    while :; do
        if metadata "127.0.0.1:$(node_key "$id" PORT)" | python3 -c '
import json, sys
try:
    md = json.load(sys.stdin)
except ValueError:
    sys.exit(1)
me, want = int(sys.argv[1]), {int(x) for x in sys.argv[2].split()}
brokers = {b["id"] for b in md.get("brokers", [])}
if not want <= brokers:
    sys.exit(1)
for t in md.get("topics", []):
    for p in t.get("partitions", []):
        replicas = {r["id"] for r in p.get("replicas", [])}
        isr = {r["id"] for r in p.get("isrs", [])}
        if me in replicas and (p.get("leader", -1) < 0 or replicas != isr):
            sys.exit(1)
' "$id" "$running"; then
            return 0
        fi
        [ "$(date +%s)" -lt "$deadline" ] || die "node $id does not serve after ${secs}s"
        sleep 0.3
    done
}

cmd_wait_all() {
    load_env "$1"
    local i
    for i in $(seq 1 "$nodes"); do cmd_wait "$1" "$i" "${2:-120}"; done
}

# The active controller: the leader of the highest KRaft epoch any running,
# unfrozen node logged a transition to ("Completed transition to
# Leader(localReplicaKey=ReplicaKey(id=N, ..., epoch=E" or
# "FollowerState(..., epoch=E, leader=N").
cmd_controller() {
    load_env "$1"
    local i files=()
    for i in $(seq 1 "$nodes"); do
        local pid state
        pid=$(node_key "$i" PID)
        state=$(ps -o stat= -p "$pid" 2>/dev/null || true)
        [ -n "$state" ] && [ "${state:0:1}" != T ] && files+=("$dir/node-$i/server.log")
    done
    ((${#files[@]})) || die "no running node"
    python3 - "${files[@]}" <<'PY'
import re, sys
best = (-1, -1)
for path in sys.argv[1:]:
    for line in open(path, errors="replace"):
        i = line.find("Completed transition to ")
        if i < 0:
            continue
        state = line[i + len("Completed transition to "):].split(" from ")[0]
        e = re.search(r"epoch=(\d+)", state)
        m = re.match(r"Leader\((?:localId=|localReplicaKey=ReplicaKey\(id=)(\d+)", state) or \
            re.match(r"FollowerState\(.*?leader(?:Id)?=(\d+)", state)
        if e and m and int(e.group(1)) > best[0]:
            best = (int(e.group(1)), int(m.group(1)))
if best[1] < 0:
    sys.exit("cluster: no controller leader in the logs")
print(best[1])
PY
}

cmd_leader() { # env topic partition
    load_env "$1"
    metadata "$(env_get "$env_file" KAFFE_CLUSTER_DIRECT_BOOTSTRAP)" | python3 -c '
import json, sys
md = json.load(sys.stdin)
for t in md["topics"]:
    if t["topic"] == sys.argv[1]:
        for p in t["partitions"]:
            if p["partition"] == int(sys.argv[2]):
                print(p["leader"]); sys.exit(0)
sys.exit("cluster: no such partition")
' "$2" "$3"
}

# The group coordinator: FindCoordinator through kcat is not available, so
# the leader of the __consumer_offsets partition the group maps to
# (Java's String.hashCode, as the broker computes it).
cmd_coordinator() { # env group
    load_env "$1"
    local part
    part=$(python3 -c '
import sys
h = 0
for ch in sys.argv[1].encode("utf-16-be").decode("utf-16-be"):
    h = (31 * h + ord(ch)) & 0xFFFFFFFF
h = h - (1 << 32) if h >= (1 << 31) else h
print((abs(h) if h != -(1 << 31) else 0) % int(sys.argv[2]))
' "$2" 6)
    cmd_leader "$1" __consumer_offsets "$part"
}

cmd_toxic() { # env id name type stream key=value...
    load_env "$1"
    local id=$2 name=$3 type=$4 stream=$5 attrs="" kv
    check_id "$id"
    shift 5
    for kv in "$@"; do attrs+="${attrs:+,}\"${kv%%=*}\":${kv#*=}"; done
    toxi_call POST "/proxies/kafka-$id/toxics" \
        "{\"name\":\"$name\",\"type\":\"$type\",\"stream\":\"$stream\",\"toxicity\":1.0,\"attributes\":{$attrs}}" >/dev/null
}

cmd_untoxic() { # env id name
    load_env "$1"
    check_id "$2"
    toxi_call DELETE "/proxies/kafka-$2/toxics/$3" >/dev/null
}

cmd_heal() {
    load_env "$1"
    toxi_call POST /reset >/dev/null
}

cmd_restore() { # env [seconds]
    load_env "$1"
    local i pid
    for i in $(seq 1 "$nodes"); do
        pid=$(node_key "$i" PID)
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill -CONT "$pid" 2>/dev/null || true
        else
            log "node $i is down: starting it"
            cmd_node "$1" "$i" start
        fi
    done
    toxi_call POST /reset >/dev/null
    cmd_wait_all "$1" "${2:-120}"
}

command=${1:-}
shift || true
case "$command" in
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    node) cmd_node "$@" ;;
    wait) cmd_wait "$@" ;;
    wait-all) cmd_wait_all "$@" ;;
    controller) cmd_controller "$@" ;;
    leader) cmd_leader "$@" ;;
    coordinator) cmd_coordinator "$@" ;;
    toxic) cmd_toxic "$@" ;;
    untoxic) cmd_untoxic "$@" ;;
    heal) cmd_heal "$@" ;;
    restore) cmd_restore "$@" ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
