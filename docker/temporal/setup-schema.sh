#!/bin/sh
# The production profile's one-off schema job (runs in temporalio/admin-tools): creates
# Temporal's two PostgreSQL databases if they are missing and brings their schemas to the
# version this admin-tools image carries. Safe to run again on every `compose up`: an
# existing database is kept, and update-schema only applies what is missing.
set -eu
: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${SQL_PASSWORD:?}"
port="${DB_PORT:-5432}"
schema_root=/etc/temporal/schema/postgresql/v12

tool() {
    temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$port" -u "$POSTGRES_USER" "$@"
}

for database in temporal temporal_visibility; do
    case "$database" in
        temporal) versioned="$schema_root/temporal/versioned" ;;
        *) versioned="$schema_root/visibility/versioned" ;;
    esac
    # create-database fails when the database exists; the schema steps below tell apart a
    # database that exists from one that cannot be reached.
    tool --db "$database" create-database || echo "database $database exists"
    # The version table exists once setup-schema ran: run it only on an empty database.
    if ! tool --db "$database" update-schema -d "$versioned" 2>/dev/null; then
        tool --db "$database" setup-schema -v 0.0
        tool --db "$database" update-schema -d "$versioned"
    fi
done
echo "Temporal schema ready"
