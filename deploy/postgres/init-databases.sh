#!/bin/sh
# One database per project (the postgres image runs this once, on an empty data volume).
# STRANGLER_DATABASES: space-separated names; POSTGRES_USER owns them. Also runnable by hand against any
# server (PGHOST/PGPORT), which is how the stack test uses it.
set -eu
for name in ${STRANGLER_DATABASES:?space-separated database names}; do
  echo "creating database $name"
  psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -c "CREATE DATABASE \"$name\" OWNER \"${POSTGRES_USER:-postgres}\""
done
