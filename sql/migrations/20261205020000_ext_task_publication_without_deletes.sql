-- Deletes leave the publication. A deleted row is a task that is over (completed,
-- ended by a BPMN error, its process instance ended or cancelled): it announces no work.
-- Published, each one still cost PostgreSQL's WAL sender its decoding, Sequin a
-- message to store, and every worker a message to receive and ack: a third of all
-- the messages of a task. Sequin checks only that the publication exists and holds
-- the table. Re-running it changes nothing.
ALTER PUBLICATION camunda_ext_tasks_pub SET (publish = 'insert, update');
