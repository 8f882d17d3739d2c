#!/usr/bin/env bash
# scripts/kafka/start.sh: starts a single-node Apache Kafka (KRaft, combined
# broker+controller) on 127.0.0.1 for kaffe's broker test tier, and prints the
# path of an env file describing it (ports, certificate paths, users) as the
# last line of stdout. Stop it with scripts/kafka/stop.sh ENV_FILE.
#
# Listeners, each on a free port: PLAINTEXT, SSL (client certificate
# required), SASL_PLAINTEXT and SASL_SSL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512).
# Certificates are made here with openssl: a CA, the broker's certificate
# (subjectAltName IP:127.0.0.1, DNS:localhost) in a PEM keystore, a client
# certificate signed directly by the CA (librdkafka < 2.8 sends no
# intermediates), and for negative tests a second, unrelated CA with its own
# client certificate, and a client key that matches no certificate.
#
# Jars come from Maven Central (pom.xml, or pom-4.xml for Kafka 4, next to
# this script: jars.sh) and are cached in ${KAFFE_CACHE:-~/.cache/kaffe}; the
# first run downloads 50-100 MB.
#
# Environment: KAFFE_KAFKA_VERSION (3.9.1, the default, or 4.1.1),
# KAFFE_CACHE (jar cache), KAFFE_KAFKA_START_TIMEOUT (seconds to wait for
# "Kafka Server started", default 90), KAFFE_KAFKA_SERVER_PROPERTIES (extra
# broker settings, "key=value" lines appended to server.properties).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=logging.sh
. "$here/logging.sh"
timeout=${KAFFE_KAFKA_START_TIMEOUT:-90}

log() { echo "kafka: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v java >/dev/null || die "java not found (apt-get install openjdk-17-jdk-headless, or scripts/setup.sh --broker)"
command -v openssl >/dev/null || die "openssl not found"
command -v python3 >/dev/null || die "python3 not found (used to pick free ports)"

# --- Jars: resolved once per pom.xml version, then cached (jars.sh). ---------
jars=$(bash "$here/jars.sh") || die "no Kafka jars"
classpath="$jars/*"

# --- Working directory and free ports. ------------------------------------
dir=$(mktemp -d "${TMPDIR:-/tmp}/kaffe-kafka.XXXXXX")
started=0
cleanup_on_failure() {
    if [ $started -eq 0 ]; then
        [ -f "$dir/kafka.pid" ] && kill -KILL "$(cat "$dir/kafka.pid")" 2>/dev/null || true
        [ -f "$dir/server.log" ] && { log "last lines of the broker log:"; tail -30 "$dir/server.log" >&2; }
        rm -rf "$dir"
    fi
}
trap cleanup_on_failure EXIT

# Bind all five at once so they are distinct; the small window until Kafka
# binds them is acceptable on a test machine.
read -r p_plain p_ssl p_sasl p_sasl_ssl p_controller < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
)

# --- Certificates. -----------------------------------------------------------
certs=$dir/certs
mkdir -p "$certs"
(
    cd "$certs"
    key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
    ca() { # name cn
        key "$1.key"
        openssl req -x509 -new -key "$1.key" -sha256 -days 2 -subj "/CN=$2" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$1.pem" 2>/dev/null
    }
    leaf() { # name cn ca extensions
        key "$1.key"
        openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
        printf '%s\n' "$4" >"$1.ext"
        openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days 2 \
            -sha256 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
        rm -f "$1.csr" "$1.ext"
    }
    ca ca "kaffe test CA"
    leaf broker localhost ca "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth"
    leaf client kaffe-client ca "extendedKeyUsage=clientAuth"
    ca wrong-ca "kaffe wrong CA"
    leaf rogue-client kaffe-rogue-client wrong-ca "extendedKeyUsage=clientAuth"
    key wrong-client.key
    # The broker's PEM keystore: unencrypted PKCS#8 key, then the chain.
    cat broker.key broker.pem ca.pem >broker-keystore.pem
    chmod 600 ./*.key broker-keystore.pem
) || die "making certificates with openssl failed"

# --- Broker configuration. ----------------------------------------------------
plain_jaas='org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";'
scram_jaas='org.apache.kafka.common.security.scram.ScramLoginModule required;'
cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$p_controller
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$p_plain,SSL://127.0.0.1:$p_ssl,SASL_PLAINTEXT://127.0.0.1:$p_sasl,SASL_SSL://127.0.0.1:$p_sasl_ssl,CONTROLLER://127.0.0.1:$p_controller
advertised.listeners=PLAINTEXT://127.0.0.1:$p_plain,SSL://127.0.0.1:$p_ssl,SASL_PLAINTEXT://127.0.0.1:$p_sasl,SASL_SSL://127.0.0.1:$p_sasl_ssl
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
# Below kaffe's default commit metadata budget (4096): the broker tier
# proves that kaffe lowers it when the broker refuses (test_broker_commit_metadata.c).
offset.metadata.max.bytes=256
ssl.keystore.type=PEM
ssl.keystore.location=$certs/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$certs/ca.pem
listener.name.ssl.ssl.client.auth=required
listener.name.sasl_ssl.ssl.client.auth=none
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_plaintext.plain.sasl.jaas.config=$plain_jaas
listener.name.sasl_ssl.plain.sasl.jaas.config=$plain_jaas
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=$scram_jaas
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=$scram_jaas
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=$scram_jaas
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=$scram_jaas
PROPS
# Extra broker settings, one "key=value" per line (later lines win).
[ -z "${KAFFE_KAFKA_SERVER_PROPERTIES:-}" ] || printf '%s\n' "$KAFFE_KAFKA_SERVER_PROPERTIES" >>"$dir/server.properties"
log_opt=$(kafka_log_config "$dir" "$jars")
java_opts=(-Xmx512m -Xms128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto
           -Djava.awt.headless=true "$log_opt")

t0=$(date +%s.%N)
cluster_id=$(bash "$here/cluster_id.sh")
java "${java_opts[@]}" -cp "$classpath" kafka.tools.StorageTool format -t "$cluster_id" \
    -c "$dir/server.properties" \
    --add-scram 'SCRAM-SHA-256=[name=alice,password=alice-secret]' \
    --add-scram 'SCRAM-SHA-512=[name=alice,password=alice-secret]' >"$dir/format.log" 2>&1 ||
    { cat "$dir/format.log" >&2; die "StorageTool format failed"; }

# setsid: the broker gets its own process group, so stop.sh can end exactly
# it (and only it) even if the test runner is interrupted.
setsid java "${java_opts[@]}" -cp "$classpath" kafka.Kafka "$dir/server.properties" \
    >"$dir/server.log" 2>&1 </dev/null &
echo $! >"$dir/kafka.pid"
pid=$(cat "$dir/kafka.pid")

deadline=$(( $(date +%s) + timeout ))
until grep -q "Kafka Server started" "$dir/server.log" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || die "the broker exited during start-up"
    [ "$(date +%s)" -lt "$deadline" ] || die "no \"Kafka Server started\" within ${timeout}s"
    sleep 0.2
done
t1=$(date +%s.%N)

cat >"$dir/broker.env" <<ENV
KAFFE_BROKER_DIR=$dir
KAFFE_BROKER_PID=$pid
KAFFE_BROKER_KAFKA_VERSION=${KAFFE_KAFKA_VERSION:-3.9.1}
KAFFE_BROKER_PLAINTEXT=127.0.0.1:$p_plain
KAFFE_BROKER_SSL=127.0.0.1:$p_ssl
KAFFE_BROKER_SASL_PLAINTEXT=127.0.0.1:$p_sasl
KAFFE_BROKER_SASL_SSL=127.0.0.1:$p_sasl_ssl
KAFFE_BROKER_CA=$certs/ca.pem
KAFFE_BROKER_CLIENT_CERT=$certs/client.pem
KAFFE_BROKER_CLIENT_KEY=$certs/client.key
KAFFE_BROKER_WRONG_CA=$certs/wrong-ca.pem
KAFFE_BROKER_WRONG_CLIENT_KEY=$certs/wrong-client.key
KAFFE_BROKER_ROGUE_CLIENT_CERT=$certs/rogue-client.pem
KAFFE_BROKER_ROGUE_CLIENT_KEY=$certs/rogue-client.key
KAFFE_BROKER_SASL_USER=alice
KAFFE_BROKER_SASL_PASSWORD=alice-secret
ENV
started=1
log "Kafka ${KAFFE_KAFKA_VERSION:-3.9.1} started pid $pid in $(python3 -c "print(round($t1 - $t0, 1))")s: plaintext $p_plain, ssl $p_ssl, sasl_plaintext $p_sasl, sasl_ssl $p_sasl_ssl (log: $dir/server.log)"
echo "$dir/broker.env"
