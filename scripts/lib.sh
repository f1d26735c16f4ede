# shellcheck shell=bash
# Shared by scripts/dev, scripts/test and scripts/kcat: installing the tools the
# stack needs (idempotently, cached outside the checkout) and starting and
# stopping its processes by pid.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${ORDERFLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/orderflow}
TANSU_VERSION=0.6.0
TANSU_ROOT=$CACHE/tansu-$TANSU_VERSION
TANSU_BIN=$TANSU_ROOT/bin/tansu
PG_BIN=${ORDERFLOW_PG_BIN:-/usr/lib/postgresql/15/bin}
VENV=$CACHE/venv
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

ensure_tansu() {
    # tansu's default features carry no storage engine; dynostore gives memory://.
    [ -x "$TANSU_BIN" ] && return 0
    mkdir -p "$CACHE"
    log "installing tansu $TANSU_VERSION into $TANSU_ROOT (first time only; 5-15 minutes) ..."
    CARGO_TARGET_DIR=$CACHE/build/tansu cargo install tansu --locked --version "$TANSU_VERSION" \
        --features dynostore,libsql --root "$TANSU_ROOT" >"$CACHE/tansu-install.log" 2>&1 \
        || die "installing tansu failed; see $CACHE/tansu-install.log"
    rm -rf "$CACHE/build/tansu"
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

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# spawn NAME PIDFILE LOG COMMAND...: starts COMMAND detached, records its pid.
spawn() {
    local name=$1 pidfile=$2 logfile=$3; shift 3
    mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
    setsid nohup "$@" >"$logfile" 2>&1 < /dev/null &
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
    if as_root; then runuser -u postgres -- "$PG_BIN/$1" "${@:2}"; else "$PG_BIN/$1" "${@:2}"; fi
}

# pg_start DATA PORT LOG [EXTRA_OPTIONS]
pg_start() {
    local data=$1 port=$2 logfile=$3 extra=${4:-}
    [ -x "$PG_BIN/initdb" ] || die "no Postgres binaries in $PG_BIN (set ORDERFLOW_PG_BIN)"
    mkdir -p "$data" "$(dirname "$logfile")"
    data=$(cd "$data" && pwd)
    if as_root; then chown postgres:postgres "$data" "$(dirname "$logfile")"; touch "$logfile"; chown postgres "$logfile"; fi
    if [ ! -f "$data/PG_VERSION" ]; then
        pg initdb -D "$data" -U postgres --auth=trust --no-sync -E UTF8 >"$logfile.initdb" 2>&1 \
            || die "initdb failed; see $logfile.initdb"
    fi
    if pg pg_ctl -D "$data" status >/dev/null 2>&1; then return 0; fi
    port_taken "$port" && die "Postgres cannot start: port $port is taken by another process"
    pg pg_ctl -D "$data" -l "$logfile" -w -t 60 \
        -o "-p $port -c listen_addresses=127.0.0.1 -k $data -c max_connections=400 $extra" start >/dev/null \
        || { tail -n 20 "$logfile" >&2; die "Postgres did not start; its log is $logfile"; }
}

pg_stop() {
    local data=$1
    [ -f "$data/postmaster.pid" ] || return 0
    pg pg_ctl -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
}

# pg_recreate PORT DB...: drops and creates each database.
pg_recreate() {
    local port=$1; shift
    for db in "$@"; do
        PGOPTIONS="-c client_min_messages=warning" psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAt \
            -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" -c "CREATE DATABASE \"$db\"" >/dev/null \
            || die "cannot create database $db on port $port"
    done
}

# ------------------------------------------------------------------ tansu

# tansu_start PORT PIDFILE LOG: memory storage (see docs/tansu.md for why).
tansu_start() {
    local port=$1 pidfile=$2 logfile=$3
    port_taken "$port" && die "tansu cannot start: port $port is taken by another process"
    spawn tansu "$pidfile" "$logfile" env RUST_LOG="${TANSU_LOG:-warn}" "$TANSU_BIN" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "memory://tansu/"
    wait_for tansu "$logfile" 30 port_taken "$port"
}
