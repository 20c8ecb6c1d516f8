#!/bin/sh
# First start of the postgres container: the engine's role and database, as in the
# test harness (role camunda owning database camunda). The password comes from the
# environment through psql's \getenv, never from a file or a command line.
set -eu
psql -X -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<'SQL'
\getenv camunda_password CAMUNDA_DB_PASSWORD
CREATE ROLE camunda LOGIN PASSWORD :'camunda_password';
CREATE DATABASE camunda OWNER camunda;
SQL
