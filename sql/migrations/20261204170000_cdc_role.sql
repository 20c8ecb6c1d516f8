-- The role a change-data-capture consumer (Sequin, or the test server) logs in with.
-- Least privilege: replication, CONNECT on this database, USAGE on schema public and
-- SELECT on public.act_ru_ext_task only. No password here: it is set when the
-- migrations are applied (see sql/README.md).
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'camunda_cdc') THEN
    CREATE ROLE camunda_cdc LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
  ELSE
    ALTER ROLE camunda_cdc LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
  END IF;
END
$$;

-- The database name differs between installations, so it is read at run time.
DO $$
BEGIN
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO camunda_cdc', current_database());
END
$$;

GRANT USAGE ON SCHEMA public TO camunda_cdc;

GRANT SELECT ON TABLE public.act_ru_ext_task TO camunda_cdc;
