#!/usr/bin/env bash
# The demo: PostgreSQL (wal_level=logical) and Redis, the example shop, viewkeeper
# with the example views, a workload, one materialized document, a search and
# the aggregate table.
#
# Uses docker compose when a Docker engine answers, else the local PostgreSQL
# and Redis binaries (everything under .demo/, removed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."

ORDERS=${DEMO_ORDERS:-2000}
TRANSACTIONS=${DEMO_TRANSACTIONS:-3000}
DEMO_DIR="$PWD/.demo"
PG_PORT=54329
REDIS_PORT=63799
pids=()

cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${MODE:-}" = docker ]; then
        docker compose down -v >/dev/null 2>&1 || true
    elif [ "${MODE:-}" = local ]; then
        as_postgres "$PG_BIN/pg_ctl" -D "$DEMO_DIR/pg" -m immediate stop >/dev/null 2>&1 || true
        redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
        rm -rf "$DEMO_DIR"
    fi
}
trap cleanup EXIT

as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_local() {
    MODE=local
    PG_BIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || command -v initdb)")
    rm -rf "$DEMO_DIR" && mkdir -p "$DEMO_DIR"
    [ "$(id -u)" = 0 ] && chown postgres "$DEMO_DIR"
    as_postgres "$PG_BIN/initdb" -D "$DEMO_DIR/pg" --auth=trust --username=postgres --locale=C -E UTF8 >/dev/null
    as_postgres "$PG_BIN/pg_ctl" -D "$DEMO_DIR/pg" -l "$DEMO_DIR/pg.log" -w start \
        -o "-p $PG_PORT -k $DEMO_DIR -c listen_addresses=127.0.0.1 -c wal_level=logical" >/dev/null
    as_postgres "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres shop
    redis-server --port "$REDIS_PORT" --save "" --appendonly no --daemonize yes \
        --logfile "$DEMO_DIR/redis.log" >/dev/null
    DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/shop"
}

start_docker() {
    MODE=docker
    docker compose up -d --wait
    DATABASE_URL="postgres://postgres:postgres@127.0.0.1:$PG_PORT/shop"
}

if docker info >/dev/null 2>&1; then start_docker; else start_local; fi
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
export VIEWKEEPER_DATABASE_URL="$DATABASE_URL" VIEWKEEPER_REDIS_URL="$REDIS_URL"

echo "== building viewkeeper"
cargo build --release --quiet
vk=target/release/viewkeeper

echo "== loading the example shop ($ORDERS orders)"
$vk workload --setup-orders "$ORDERS" --transactions 0
$vk check --views views

echo "== starting viewkeeper"
$vk run --views views --data-dir "$DEMO_DIR/data" --log warn &
pids+=($!)

echo "== running $TRANSACTIONS random transactions"
$vk workload --transactions "$TRANSACTIONS" --rate 1000

echo "== waiting until viewkeeper has caught up"
target=$(psql "$DATABASE_URL" -Atc "SELECT pg_current_wal_lsn()")
for _ in $(seq 1 300); do
    caught_up=$(psql "$DATABASE_URL" -Atc \
        "SELECT confirmed_flush_lsn >= '$target' FROM pg_replication_slots WHERE slot_name = 'viewkeeper'")
    [ "$caught_up" = t ] && break
    sleep 0.2
done

id=$(psql "$DATABASE_URL" -Atc "SELECT id FROM orders WHERE status <> 'draft' ORDER BY id LIMIT 1")
echo "== redis-cli GET order:$id"
redis-cli -p "$REDIS_PORT" GET "order:$id" | python3 -m json.tool
word=$(psql "$DATABASE_URL" -Atc "SELECT split_part(name, ' ', 1) FROM products ORDER BY id LIMIT 1")
echo "== viewkeeper search product_search \"$word\" --limit 3"
$vk search product_search "$word" --limit 3 --views views --data-dir "$DEMO_DIR/data"
echo "== the aggregate table analytics.category_daily_sales (newest days)"
psql "$DATABASE_URL" -c "SELECT * FROM analytics.category_daily_sales ORDER BY day DESC, category_id LIMIT 5"
echo "== paid items: $(psql "$DATABASE_URL" -Atc "SELECT coalesce(sum(items), 0) FROM analytics.category_daily_sales") in the table," \
    "$(psql "$DATABASE_URL" -Atc "SELECT count(*) FROM order_items oi JOIN orders o ON o.id = oi.order_id WHERE o.status = 'paid'") in PostgreSQL"
echo "== documents in Redis: $(redis-cli -p "$REDIS_PORT" --scan --pattern 'order:*' | wc -l)," \
    "non-draft orders in PostgreSQL: $(psql "$DATABASE_URL" -Atc "SELECT count(*) FROM orders WHERE status <> 'draft'")"
