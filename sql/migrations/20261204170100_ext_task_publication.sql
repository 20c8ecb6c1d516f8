-- Old rows in full in the WAL: updates then carry the previous values (Sequin's
-- `changes`) and deletes the whole last row, not only the primary key.
ALTER TABLE public.act_ru_ext_task REPLICA IDENTITY FULL;

-- The publication holds this one table and publishes inserts, updates and deletes
-- (no truncates). Re-running it resets both to that.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_publication WHERE pubname = 'camunda_ext_tasks_pub') THEN
    CREATE PUBLICATION camunda_ext_tasks_pub FOR TABLE public.act_ru_ext_task
      WITH (publish = 'insert, update, delete');
  ELSE
    ALTER PUBLICATION camunda_ext_tasks_pub SET TABLE public.act_ru_ext_task;
    ALTER PUBLICATION camunda_ext_tasks_pub SET (publish = 'insert, update, delete');
  END IF;
END
$$;
