#!/bin/sh
# The production profile's one-off namespace job (runs in temporalio/admin-tools once the
# server is healthy): registers shipcord's namespace unless it exists.
set -eu
: "${TEMPORAL_ADDRESS:?}" "${NAMESPACE:?}"
if temporal operator namespace describe --address "$TEMPORAL_ADDRESS" -n "$NAMESPACE" >/dev/null 2>&1; then
    echo "namespace $NAMESPACE exists"
else
    temporal operator namespace create --address "$TEMPORAL_ADDRESS" -n "$NAMESPACE" \
        --retention "${RETENTION:-72h}"
    echo "namespace $NAMESPACE created"
fi
