"""Change data capture end to end: the real engine on PostgreSQL, the sql/ migrations, and the
Sequin stand-in reading act_ru_ext_task changes from the WAL through the slot and publication."""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from typing import Any, Dict, Iterator

import pg8000.native
import pytest

from camunda_ext import Client
from camunda_ext.models import FetchTopic
from harness import Engine, HarnessError, PostgresCluster
from harness.migrations import apply_migrations
from harness.sequin_server import SequinServer, start_sequin_server
from tests.integration import cdc_fixtures
from tests.integration.cdc_fixtures import PullClient
from tests.integration.conftest import BPMN, new_client

# The fixtures of cdc_fixtures, visible to this module's tests.
cdc_password = cdc_fixtures.cdc_password
sequin_token = cdc_fixtures.sequin_token
cdc_database = cdc_fixtures.cdc_database
sequin_server = cdc_fixtures.sequin_server
pull = cdc_fixtures.pull

TASK_COLUMNS = {
    "id_",
    "rev_",
    "worker_id_",
    "topic_name_",
    "retries_",
    "error_msg_",
    "error_details_id_",
    "lock_exp_time_",
    "create_time_",
    "suspension_state_",
    "execution_id_",
    "proc_inst_id_",
    "proc_def_id_",
    "proc_def_key_",
    "act_id_",
    "act_inst_id_",
    "tenant_id_",
    "priority_",
    "last_failure_log_id_",
}
NAIVE_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")


@pytest.fixture
def pg_client(pg_engine: Engine) -> Iterator[Client]:
    with new_client(pg_engine) as made:
        yield made


@pytest.fixture
def loan_granting(pg_client: Client) -> Iterator[str]:
    deployment = pg_client.deploy(
        "cdc-loan-granting", [BPMN / "loan-granting.bpmn"], enable_duplicate_filtering=False
    )
    yield deployment.id
    pg_client.delete_deployment(deployment.id, cascade=True)


def cdc_connection(cluster: PostgresCluster, password: str) -> Any:
    return pg8000.native.Connection(
        "camunda_cdc", password=password, host=cluster.host, port=cluster.port, database=cluster.dbname
    )


def task_of(process_instance_id: str, topic: str, action: str):  # type: ignore[no-untyped-def]
    def matches(message: Dict[str, Any]) -> bool:
        record = message["record"]
        return bool(
            message["action"] == action
            and record["proc_inst_id_"] == process_instance_id
            and record["topic_name_"] == topic
        )

    return matches


# -- the migrations -------------------------------------------------------------------------


def test_migrations_create_the_slot_publication_and_identity(cdc_database: PostgresCluster) -> None:
    slots = cdc_database.psql("SELECT slot_name, plugin, slot_type, database FROM pg_replication_slots")
    publication = cdc_database.psql(
        "SELECT pubinsert, pubupdate, pubdelete, pubtruncate, puballtables FROM pg_publication "
        "WHERE pubname = 'camunda_ext_tasks_pub'"
    )
    tables = cdc_database.psql(
        "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = 'camunda_ext_tasks_pub'"
    )
    identity = cdc_database.psql(
        "SELECT relreplident FROM pg_class WHERE oid = 'public.act_ru_ext_task'::regclass"
    )

    assert slots.split() == ["camunda_ext_tasks_slot|pgoutput|logical|camunda"]
    assert publication.strip() == "t|t|f|f|f"  # inserts and updates only
    assert tables.split() == ["public.act_ru_ext_task"]
    assert identity.strip() == "f"


def test_migrations_are_idempotent(cdc_database: PostgresCluster, cdc_password: str) -> None:
    apply_migrations(cdc_database, cdc_password=cdc_password)

    assert cdc_database.psql("SELECT count(*) FROM pg_replication_slots").strip() == "1"
    assert cdc_database.psql("SELECT count(*) FROM pg_publication").strip() == "1"


def test_an_empty_password_is_refused(cdc_database: PostgresCluster) -> None:
    with pytest.raises(HarnessError, match="must not be empty"):
        apply_migrations(cdc_database, cdc_password="")


def test_the_role_has_only_the_privileges_named(cdc_database: PostgresCluster, cdc_password: str) -> None:
    attributes = cdc_database.psql(
        "SELECT rolcanlogin, rolreplication, rolsuper, rolcreatedb, rolcreaterole, rolpassword IS NOT NULL "
        "FROM pg_authid WHERE rolname = 'camunda_cdc'"
    )
    assert attributes.strip() == "t|t|f|f|f|t"

    connection = cdc_connection(cdc_database, cdc_password)
    try:
        # Reading the task table is granted: this raises if it is not.
        connection.run("SELECT count(*) FROM public.act_ru_ext_task")
        for statement in (
            "SELECT * FROM public.act_ru_execution",
            "SELECT * FROM public.act_ge_bytearray",
            "UPDATE public.act_ru_ext_task SET rev_ = rev_",
            "DELETE FROM public.act_ru_ext_task",
            "CREATE TABLE public.cdc_probe (id int)",
        ):
            with pytest.raises(pg8000.native.DatabaseError) as denied:
                connection.run(statement)
            assert denied.value.args[0]["C"] == "42501", statement  # insufficient_privilege
        # Sequin's heartbeat (a transactional logical message) is allowed.
        connection.run("SELECT pg_logical_emit_message(true, 'camunda-ext-test', 'beat')")
    finally:
        connection.close()


def test_the_role_logs_in_with_its_password_only_over_the_protocol_it_is_given(
    cdc_database: PostgresCluster, cdc_password: str
) -> None:
    stored = cdc_database.psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'camunda_cdc'").strip()

    assert stored.startswith(("SCRAM-SHA-256$", "md5"))
    assert cdc_password not in stored


# -- the WAL feed ---------------------------------------------------------------------------


def test_an_external_task_comes_as_an_insert_and_an_update_and_its_delete_is_not_published(
    sequin_server: SequinServer, pull: PullClient, pg_client: Client, loan_granting: str
) -> None:
    instance = pg_client.start_process_instance("loan-granting", business_key="cdc-%s" % uuid.uuid4().hex[:8])

    inserted = pull.next_matching(task_of(instance.id, "creditScoreChecker", "insert"))
    message = inserted["data"]
    record = message["record"]
    assert uuid.UUID(inserted["ack_id"]).version == 4
    assert set(record) == TASK_COLUMNS
    assert message["changes"] is None
    assert record["rev_"] == 1
    assert record["worker_id_"] is None
    assert record["lock_exp_time_"] is None
    assert record["retries_"] is None
    assert record["act_id_"] == "checkCreditScore"
    assert record["proc_def_key_"] == "loan-granting"
    assert record["suspension_state_"] == 1
    assert record["priority_"] == 0
    assert NAIVE_TIMESTAMP.match(record["create_time_"])
    metadata = message["metadata"]
    assert metadata["table_schema"] == "public"
    assert metadata["table_name"] == "act_ru_ext_task"
    assert metadata["record_pks"] == [record["id_"]]
    assert isinstance(metadata["commit_lsn"], int) and metadata["commit_lsn"] > 0
    assert metadata["consumer"]["name"] == "camunda-ext-tasks"
    assert metadata["database"]["database"] == "camunda"
    committed = dt.datetime.strptime(metadata["commit_timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert abs(dt.datetime.utcnow() - committed) < dt.timedelta(minutes=5)
    task_id = record["id_"]

    (locked,) = pg_client.fetch_and_lock(
        [FetchTopic(topic_name="creditScoreChecker", lock_duration=60000)], max_tasks=1
    )
    assert locked.id == task_id

    updated = pull.next_matching(lambda m: m["action"] == "update" and m["record"]["id_"] == task_id)["data"]
    assert updated["record"]["worker_id_"] == pg_client.worker_id
    assert updated["record"]["rev_"] == 2
    assert NAIVE_TIMESTAMP.match(updated["record"]["lock_exp_time_"])
    assert updated["changes"]["worker_id_"] is None
    assert updated["changes"]["lock_exp_time_"] is None
    assert updated["changes"]["rev_"] == 1
    assert set(updated["changes"]) <= TASK_COLUMNS - {"id_", "topic_name_", "proc_inst_id_"}
    assert updated["metadata"]["commit_lsn"] > metadata["commit_lsn"]

    pg_client.complete(task_id, variables={"creditScores": [7]})

    # The complete deletes the task and inserts the next one of the process (score
    # 7 > 5: grant the loan) in one transaction. Messages come in commit order, so
    # by this insert a published delete would have come too.
    pull.next_matching(task_of(instance.id, "loanGranter", "insert"))
    assert [m for m in pull.backlog if m["data"]["record"].get("id_") == task_id] == []


def test_one_row_waits_for_the_ack_of_its_previous_change(
    sequin_server: SequinServer, pull: PullClient, pg_client: Client, loan_granting: str
) -> None:
    instance = pg_client.start_process_instance("loan-granting")
    inserted = pull.next_matching(task_of(instance.id, "creditScoreChecker", "insert"))
    task_id = inserted["data"]["record"]["id_"]
    pg_client.fetch_and_lock([FetchTopic(topic_name="creditScoreChecker", lock_duration=60000)], max_tasks=1)
    pg_client.unlock(task_id)

    first = wait_for_row(pull, task_id)
    assert first["data"]["record"]["worker_id_"] == pg_client.worker_id  # the lock
    assert [i for i in pull.receive(wait_for=None) if i["data"]["record"]["id_"] == task_id] == []

    pull.nack(first["ack_id"])
    again = wait_for_row(pull, task_id)
    assert again["ack_id"] == first["ack_id"]
    pull.ack(again["ack_id"])
    unlocked = wait_for_row(pull, task_id)["data"]
    assert (unlocked["action"], unlocked["record"]["worker_id_"]) == ("update", None)


def wait_for_row(client: PullClient, task_id: str) -> Dict[str, Any]:
    """The next message of one row, leaving it unacked (messages of other rows are acked)."""
    for _ in range(30):
        for item in client.receive():
            if item["data"]["record"]["id_"] == task_id:
                return item
            client.ack(item["ack_id"])
    raise AssertionError("no message for task %s" % task_id)


def test_no_secret_reaches_the_logs(
    cdc_database: PostgresCluster, cdc_password: str, sequin_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    apply_migrations(cdc_database, cdc_password=cdc_password)
    with start_sequin_server(cdc_database, token=sequin_token, cdc_password=cdc_password) as server:
        client = PullClient(server, sequin_token)
        try:
            client.receive(wait_for=None)
        finally:
            client.close()

    assert caplog.records
    assert cdc_password not in caplog.text
    assert sequin_token not in caplog.text
