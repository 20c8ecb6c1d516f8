-- atlas:txmode none

-- The logical replication slot the consumer reads, decoded with pgoutput. A slot
-- cannot be created in a transaction that has written anything, hence no
-- transaction around this file. Nothing happens when the slot already exists.
SELECT pg_catalog.pg_create_logical_replication_slot('camunda_ext_tasks_slot', 'pgoutput')
WHERE NOT EXISTS (
  SELECT FROM pg_catalog.pg_replication_slots WHERE slot_name = 'camunda_ext_tasks_slot'
);
