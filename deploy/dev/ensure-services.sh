#!/usr/bin/env bash
# Make sure the services the test suite talks to are running on this machine.
#
#   RabbitMQ on 127.0.0.1:5672 (started with `rabbitmq-server -detached` if it is down).
#   PostgreSQL on 127.0.0.1:5432 (Debian's cluster `main`, started with pg_ctlcluster if
#   it is down), for the suite's PostgreSQL run (`make test`, DIPGW_TEST_DATABASE).
#
# Prints one line per service saying what it did. If a service is not installed it says
# so and carries on (tests that need it skip), unless DIPGW_REQUIRE_SERVICES=1, in which
# case it exits non-zero. Override the wait with DIPGW_SERVICES_TIMEOUT (seconds, default 60).
set -euo pipefail

RABBITMQ_HOST=127.0.0.1
RABBITMQ_PORT=5672
POSTGRES_HOST=127.0.0.1
POSTGRES_PORT=5432
TIMEOUT="${DIPGW_SERVICES_TIMEOUT:-60}"
REQUIRE="${DIPGW_REQUIRE_SERVICES:-0}"

port_open() {  # host port
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

missing() {  # message
    if [[ "$REQUIRE" == "1" ]]; then
        echo "ensure-services: $1 (required: DIPGW_REQUIRE_SERVICES=1)" >&2
        exit 1
    fi
    echo "ensure-services: $1; tests that need it will be skipped"
}

ensure_rabbitmq() {
    if port_open "$RABBITMQ_HOST" "$RABBITMQ_PORT"; then
        echo "ensure-services: RabbitMQ already running on $RABBITMQ_HOST:$RABBITMQ_PORT"
        return 0
    fi
    if ! command -v rabbitmq-server >/dev/null 2>&1 || ! command -v rabbitmqctl >/dev/null 2>&1; then
        missing "RabbitMQ is not running on $RABBITMQ_HOST:$RABBITMQ_PORT and rabbitmq-server is not installed (e.g. apt-get install rabbitmq-server)"
        return 0
    fi
    rabbitmq-server -detached >/dev/null 2>&1 || true
    if ! timeout "$TIMEOUT" rabbitmqctl await_startup --timeout "$TIMEOUT" >/dev/null 2>&1; then
        missing "started rabbitmq-server but it did not come up within ${TIMEOUT}s"
        return 0
    fi
    local deadline=$((SECONDS + TIMEOUT))
    until port_open "$RABBITMQ_HOST" "$RABBITMQ_PORT"; do
        if ((SECONDS >= deadline)); then
            missing "rabbitmq-server started but $RABBITMQ_HOST:$RABBITMQ_PORT does not accept connections"
            return 0
        fi
        sleep 0.5
    done
    echo "ensure-services: started RabbitMQ (rabbitmq-server -detached) on $RABBITMQ_HOST:$RABBITMQ_PORT"
}

ensure_postgres() {
    if port_open "$POSTGRES_HOST" "$POSTGRES_PORT"; then
        echo "ensure-services: PostgreSQL already running on $POSTGRES_HOST:$POSTGRES_PORT"
        return 0
    fi
    local version
    version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || [[ -z "$version" ]]; then
        missing "PostgreSQL is not running on $POSTGRES_HOST:$POSTGRES_PORT and no Debian cluster is installed (e.g. apt-get install postgresql)"
        return 0
    fi
    if ! pg_ctlcluster --skip-systemctl-redirect "$version" main start; then
        missing "pg_ctlcluster $version main start failed (see /var/log/postgresql/postgresql-$version-main.log)"
        return 0
    fi
    local deadline=$((SECONDS + TIMEOUT))
    until port_open "$POSTGRES_HOST" "$POSTGRES_PORT"; do
        if ((SECONDS >= deadline)); then
            missing "PostgreSQL $version started but $POSTGRES_HOST:$POSTGRES_PORT does not accept connections"
            return 0
        fi
        sleep 0.5
    done
    echo "ensure-services: started PostgreSQL $version (pg_ctlcluster $version main start) on $POSTGRES_HOST:$POSTGRES_PORT"
}

ensure_rabbitmq
ensure_postgres
