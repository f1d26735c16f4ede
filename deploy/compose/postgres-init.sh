#!/usr/bin/env bash
# Runs once, when the Postgres container initialises its data directory:
# one database per service (each service owns its own and migrates it at
# start-up). `registry` is used only by the optional development registry
# (profile dev-registry); Redpanda's registry needs none.
set -euo pipefail
for db in users orders payments inventory audit readmodels registry; do
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
        -c "CREATE DATABASE \"$db\" OWNER \"$POSTGRES_USER\""
done
