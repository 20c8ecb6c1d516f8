"""The Sequin-compatible pull server of the test harness, over HTTP, fed in memory (no PostgreSQL).

Statuses and bodies are those of Sequin v0.14.6.
"""

from __future__ import annotations

import base64
import datetime as dt
import struct
import threading
import uuid
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
import requests

from harness import sequin_server as ss
from harness.pgoutput import Change, Column, Relation
from harness.replication import Keepalive, XLogData

TOKEN = "unit-token-0123"
CONSUMER = "camunda-ext-tasks"
AUTH = {"Authorization": "Bearer %s" % TOKEN}
JSON = {"Content-Type": "application/json"}
NOT_FOUND = {"errors": {"detail": "Not Found"}}
COMMIT_TIME = dt.datetime(2025, 6, 2, 9, 14, 3, 530112, tzinfo=dt.timezone.utc)
TASK = Relation(
    relation_id=16394,
    namespace="public",
    name="act_ru_ext_task",
    replica_identity="f",
    columns=(
        Column(name="id_", type_oid=1043, type_modifier=-1, is_key=True),
        Column(name="rev_", type_oid=23, type_modifier=-1, is_key=True),
        Column(name="topic_name_", type_oid=1043, type_modifier=-1, is_key=True),
    ),
)
METADATA_KEYS = {
    "table_schema",
    "table_name",
    "commit_timestamp",
    "commit_lsn",
    "commit_idx",
    "database_name",
    "transaction_annotations",
    "idempotency_key",
    "record_pks",
    "enrichment",
    "consumer",
    "database",
}


class FakeClock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def change(
    task_id: str,
    lsn: int,
    idx: int = 0,
    *,
    action: str = "insert",
    rev: int = 1,
    changes: Optional[Dict[str, Any]] = None,
) -> Change:
    return Change(
        action=action,
        relation=TASK,
        primary_key=("id_",),
        record={"id_": task_id, "rev_": rev, "topic_name_": "creditScoreChecker"},
        changes=changes if action == "update" else None,
        commit_lsn=lsn,
        commit_idx=idx,
        commit_time=COMMIT_TIME,
        xid=700,
    )


class Pauses:
    """A waiting receive's pauses between store checks: they move the fake clock, no sleep.

    ``then[n]`` runs after the ``n``-th pause (from 1), e.g. a change arriving.
    """

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.seconds: List[float] = []
        self.then: Dict[int, Callable[[], None]] = {}

    def __call__(self, seconds: float, stopped: threading.Event) -> bool:
        self.seconds.append(seconds)
        self.clock.now += seconds
        action = self.then.pop(len(self.seconds), None)
        if action is not None:
            action()
        return False


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def pauses(clock: FakeClock) -> Pauses:
    return Pauses(clock)


@pytest.fixture
def server(clock: FakeClock, pauses: Pauses) -> Iterator[ss.SequinServer]:
    with ss.SequinServer(token=TOKEN, consumer=CONSUMER, clock=clock, pause=pauses) as running:
        yield running
    assert not [t for t in threading.enumerate() if t.name.startswith("sequin-double")]


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False
        yield session


def url(
    server: ss.SequinServer, action: str, prefix: str = "http_pull_consumers", consumer: str = CONSUMER
) -> str:
    return "%s/api/%s/%s/%s" % (server.url, prefix, consumer, action)


def receive(http: requests.Session, server: ss.SequinServer, **body: Any) -> List[Dict[str, Any]]:
    answer = http.post(url(server, "receive"), json=body, headers=AUTH, timeout=10)
    assert answer.status_code == 200, answer.text
    data: List[Dict[str, Any]] = answer.json()["data"]
    return data


def post(http: requests.Session, server: ss.SequinServer, action: str, body: Any) -> requests.Response:
    return http.post(url(server, action), json=body, headers=AUTH, timeout=10)


# -- routes -----------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["sequin_streams", "http_pull_consumers"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_receive_on_both_prefixes_with_get_and_post(
    server: ss.SequinServer, http: requests.Session, prefix: str, method: str
) -> None:
    server.add_changes([change("t-1", 100)])

    answer = http.request(method, url(server, "receive", prefix), headers={**AUTH, **JSON}, timeout=10)

    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
    assert [m["data"]["record"]["id_"] for m in answer.json()["data"]] == ["t-1"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/sequin_streams/camunda-ext-tasks/ack"),
        ("GET", "/api/http_pull_consumers/camunda-ext-tasks/nack"),
        ("PUT", "/api/sequin_streams/camunda-ext-tasks/receive"),
        ("DELETE", "/api/sequin_streams/camunda-ext-tasks/ack"),
        ("POST", "/api/streams/camunda-ext-tasks/receive"),
        ("POST", "/api/sequin_streams/camunda-ext-tasks/receive/extra"),
        ("GET", "/"),
    ],
)
def test_unrouted_requests_get_phoenix_404(
    server: ss.SequinServer, http: requests.Session, method: str, path: str
) -> None:
    answer = http.request(method, server.url + path, headers={**AUTH, **JSON}, data="{}", timeout=10)

    assert answer.status_code == 404
    assert answer.json() == NOT_FOUND


def test_the_consumer_is_found_by_id_too(server: ss.SequinServer, http: requests.Session) -> None:
    answer = http.get(url(server, "receive", consumer=server.consumer_id), headers=AUTH, timeout=10)

    assert answer.status_code == 200
    assert answer.json() == {"data": []}


@pytest.mark.parametrize("consumer", ["other-consumer", str(uuid.uuid4())])
@pytest.mark.parametrize("action", ["receive", "ack", "nack"])
def test_unknown_consumer_is_404_with_summary(
    server: ss.SequinServer, http: requests.Session, consumer: str, action: str
) -> None:
    answer = http.post(
        url(server, action, consumer=consumer),
        json={"ack_ids": ["x"], "wait_for": "bad"},
        headers=AUTH,
        timeout=10,
    )

    assert answer.status_code == 404
    assert answer.json() == {"summary": "Not found: No `consumer` found matching the provided ID or name"}


# -- Accept, auth and content type, in Sequin's order -------------------------------------


def test_accept_is_checked_before_auth(server: ss.SequinServer, http: requests.Session) -> None:
    answer = http.get(url(server, "receive"), headers={"Accept": "text/html"}, timeout=10)

    assert answer.status_code == 406


@pytest.mark.parametrize(
    "accept", ["*/*", "application/json", "text/html, application/json;q=0.9", "application/*"]
)
def test_json_compatible_accept_headers_pass(
    server: ss.SequinServer, http: requests.Session, accept: str
) -> None:
    answer = http.get(url(server, "receive"), headers={**AUTH, "Accept": accept}, timeout=10)

    assert answer.status_code == 200


@pytest.mark.parametrize(
    ("headers", "summary"),
    [
        ({}, ss.NO_TOKEN),
        ({"Authorization": TOKEN}, ss.NOT_BEARER),
        ({"Authorization": "bearer %s" % TOKEN}, ss.NOT_BEARER),
        ({"Authorization": "Basic dXNlcjpwdw=="}, ss.NOT_BEARER),
        ({"Authorization": "Bearer wrong-token"}, ss.BAD_TOKEN),
        ({"Authorization": "Bearer "}, ss.BAD_TOKEN),
    ],
    ids=["missing", "no-prefix", "lower-case-prefix", "basic", "wrong", "empty"],
)
def test_auth_failures_are_401_with_summary(
    server: ss.SequinServer, http: requests.Session, headers: Dict[str, str], summary: str
) -> None:
    # No JSON content type on this POST: auth is checked first.
    answer = http.post(
        url(server, "receive"), data="x", headers={**headers, "Content-Type": "text/plain"}, timeout=10
    )

    assert answer.status_code == 401
    assert answer.json() == {"summary": summary}


def test_two_authorization_headers_are_401(server: ss.SequinServer) -> None:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.putrequest("GET", "/api/sequin_streams/%s/receive" % CONSUMER)
        connection.putheader("Authorization", "Bearer %s" % TOKEN)
        connection.putheader("Authorization", "Bearer %s" % TOKEN)
        connection.endheaders()
        answer = connection.getresponse()
        status, body = answer.status, answer.read()
    finally:
        connection.close()

    assert status == 401
    assert b"exactly one Authorization header" in body


def test_summaries_are_sequins_texts() -> None:
    assert ss.BAD_TOKEN.startswith("The API token you provided is invalid or has expired.")
    assert ss.NO_TOKEN.startswith("Please provide a valid API token in the Authorization header.\n\n")
    assert ss.NO_TOKEN.endswith("Authorization: Bearer <your-api-token>\n\n")


@pytest.mark.parametrize("action", ["receive", "ack", "nack"])
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_every_post_needs_a_json_content_type(
    server: ss.SequinServer, http: requests.Session, action: str, content_type: Optional[str]
) -> None:
    headers = dict(AUTH)
    if content_type:
        headers["Content-Type"] = content_type
    answer = http.post(url(server, action), data=b'{"ack_ids": []}', headers=headers, timeout=10)

    assert answer.status_code == 400
    assert answer.json() == {"summary": "Content-Type: application/json is required"}


def test_content_type_with_charset_is_json(server: ss.SequinServer, http: requests.Session) -> None:
    headers = {**AUTH, "Content-Type": "application/json; charset=utf-8"}
    answer = http.post(url(server, "receive"), data=b"{}", headers=headers, timeout=10)

    assert answer.status_code == 200


def test_get_receive_needs_no_content_type(server: ss.SequinServer, http: requests.Session) -> None:
    assert http.get(url(server, "receive"), headers=AUTH, timeout=10).status_code == 200


def test_a_body_that_is_not_json_is_phoenix_400(server: ss.SequinServer, http: requests.Session) -> None:
    answer = http.post(url(server, "receive"), data=b"{nope", headers={**AUTH, **JSON}, timeout=10)

    assert answer.status_code == 400
    assert answer.json() == {"errors": {"detail": "Bad Request"}}


# -- receive parameters -----------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1001, -1, "0", "1001", "abc", "10x", "", " 5", 2.5, 5.0])
@pytest.mark.parametrize("name", ["max_batch_size", "batch_size"])
def test_bad_batch_sizes_are_400(
    server: ss.SequinServer, http: requests.Session, name: str, value: Any
) -> None:
    answer = post(http, server, "receive", {name: value})

    assert answer.status_code == 400
    assert answer.json() == {"summary": ss.BAD_BATCH_SIZE}


def test_a_null_batch_size_crashes_like_sequin(server: ss.SequinServer, http: requests.Session) -> None:
    answer = post(http, server, "receive", {"max_batch_size": None})

    assert answer.status_code == 500


@pytest.mark.parametrize("value", [1, 1000, "3", "+3", 3])
def test_good_batch_sizes(server: ss.SequinServer, http: requests.Session, value: Any) -> None:
    server.add_changes([change("t-%d" % i, 100 + i) for i in range(5)])

    data = receive(http, server, max_batch_size=value)

    assert len(data) == min(int(value), 5)


def test_default_batch_size_is_one(server: ss.SequinServer, http: requests.Session) -> None:
    server.add_changes([change("t-1", 101), change("t-2", 102)])

    assert len(receive(http, server)) == 1


def test_legacy_batch_size_takes_precedence(server: ss.SequinServer, http: requests.Session) -> None:
    server.add_changes([change("t-%d" % i, 100 + i) for i in range(5)])

    assert len(receive(http, server, batch_size=2, max_batch_size=1000)) == 2
    answer = post(http, server, "receive", {"batch_size": 0, "max_batch_size": 5})
    assert answer.status_code == 400
    assert answer.json() == {"summary": ss.BAD_BATCH_SIZE}


def test_query_string_and_body_merge_with_body_winning(
    server: ss.SequinServer, http: requests.Session
) -> None:
    server.add_changes([change("t-%d" % i, 100 + i) for i in range(5)])

    from_query = http.get(url(server, "receive") + "?max_batch_size=2", headers=AUTH, timeout=10)
    body_wins = http.post(
        url(server, "receive") + "?max_batch_size=0", json={"max_batch_size": 2}, headers=AUTH, timeout=10
    )

    assert len(from_query.json()["data"]) == 2
    assert len(body_wins.json()["data"]) == 2


@pytest.mark.parametrize(
    ("value", "summary"),
    [
        (0, ss.BAD_WAIT_FOR_RANGE),
        ("0", ss.BAD_WAIT_FOR_RANGE),
        (499, ss.BAD_WAIT_FOR_RANGE),
        (300001, ss.BAD_WAIT_FOR_RANGE),
        ("6m", ss.BAD_WAIT_FOR_RANGE),
        ("499ms", ss.BAD_WAIT_FOR_RANGE),
        ("5h", ss.BAD_WAIT_FOR_FORMAT),
        ("1.5s", ss.BAD_WAIT_FOR_FORMAT),
        ("abc", ss.BAD_WAIT_FOR_FORMAT),
        ("", ss.BAD_WAIT_FOR_FORMAT),
        ("-1s", ss.BAD_WAIT_FOR_FORMAT),
    ],
)
def test_bad_wait_for_is_400(
    server: ss.SequinServer, http: requests.Session, value: Any, summary: str
) -> None:
    answer = post(http, server, "receive", {"wait_for": value})

    assert answer.status_code == 400
    assert answer.json() == {"summary": summary}


def test_batch_size_is_checked_before_wait_for(server: ss.SequinServer, http: requests.Session) -> None:
    answer = post(http, server, "receive", {"max_batch_size": 0, "wait_for": "bad"})

    assert answer.json() == {"summary": ss.BAD_BATCH_SIZE}


@pytest.mark.parametrize("value", [None, True])
def test_wait_for_null_means_no_wait(
    server: ss.SequinServer, http: requests.Session, pauses: Pauses, value: Any
) -> None:
    assert receive(http, server, wait_for=value) == []
    assert pauses.seconds == []


@pytest.mark.parametrize(("value", "seconds"), [(500, 0.5), ("500", 0.5), ("500ms", 0.5), ("1s", 1.0)])
def test_wait_for_waits_when_nothing_is_stored(
    server: ss.SequinServer, http: requests.Session, pauses: Pauses, value: Any, seconds: float
) -> None:
    assert receive(http, server, wait_for=value) == []
    # The whole wait, checking the store every 50 ms as Sequin does.
    assert sum(pauses.seconds) == pytest.approx(seconds)
    assert max(pauses.seconds) == pytest.approx(0.05)


def test_wait_for_returns_early_when_a_message_arrives(
    server: ss.SequinServer, http: requests.Session, pauses: Pauses
) -> None:
    pauses.then[3] = lambda: server.add_changes([change("t-1", 100)])

    data = receive(http, server, wait_for="20s", max_batch_size=10)

    assert [m["data"]["record"]["id_"] for m in data] == ["t-1"]
    assert len(pauses.seconds) == 3  # the next check found it


def test_wait_for_returns_at_once_while_messages_are_in_flight(
    server: ss.SequinServer, http: requests.Session, pauses: Pauses
) -> None:
    server.add_changes([change("t-1", 100)])
    assert len(receive(http, server)) == 1

    assert receive(http, server, wait_for=20000) == []
    assert pauses.seconds == []


def test_stop_ends_a_waiting_receive(clock: FakeClock, http: requests.Session) -> None:
    waiting = threading.Event()

    def pause(seconds: float, stopped: threading.Event) -> bool:
        waiting.set()
        return stopped.wait(seconds)  # the fake clock stands still: only stop() ends the wait

    server = ss.SequinServer(token=TOKEN, clock=clock, pause=pause).start()
    result: Dict[str, Any] = {}

    def call() -> None:
        try:
            result["answer"] = http.get(url(server, "receive") + "?wait_for=60s", headers=AUTH, timeout=10)
        except requests.RequestException as error:
            result["error"] = error

    caller = threading.Thread(target=call)
    caller.start()
    assert waiting.wait(10), "the receive never waited"
    server.stop()
    caller.join(10)

    assert not caller.is_alive()
    assert result


# -- the envelope ------------------------------------------------------------------------


def test_envelope_and_metadata(server: ss.SequinServer, http: requests.Session) -> None:
    server.add_changes([change("t-1", 27440068)])

    (item,) = receive(http, server)

    assert set(item) == {"ack_id", "data"}
    assert uuid.UUID(item["ack_id"]).version == 4
    message = item["data"]
    assert set(message) == {"action", "changes", "metadata", "record"}
    assert message["action"] == "insert"
    assert message["changes"] is None
    assert message["record"] == {"id_": "t-1", "rev_": 1, "topic_name_": "creditScoreChecker"}
    metadata = message["metadata"]
    assert set(metadata) == METADATA_KEYS
    assert metadata["table_schema"] == "public"
    assert metadata["table_name"] == "act_ru_ext_task"
    assert metadata["commit_timestamp"] == "2025-06-02T09:14:03.530112Z"
    assert metadata["commit_lsn"] == 27440068
    assert metadata["commit_idx"] == 0
    assert metadata["idempotency_key"] == "Mjc0NDAwNjg6MA=="
    assert base64.b64decode(metadata["idempotency_key"]) == b"27440068:0"
    assert metadata["record_pks"] == ["t-1"]
    assert metadata["database_name"] == "camunda"
    assert metadata["transaction_annotations"] is None
    assert metadata["enrichment"] is None
    assert metadata["consumer"] == {"id": server.consumer_id, "name": CONSUMER, "annotations": {}}
    assert set(metadata["database"]) == {"id", "name", "annotations", "database", "hostname"}
    assert metadata["database"]["annotations"] == {}


def test_update_carries_changes_and_delete_none(server: ss.SequinServer, http: requests.Session) -> None:
    server.add_changes(
        [
            change("t-1", 100, action="update", rev=2, changes={"rev_": 1}),
            change("t-2", 101, action="delete"),
        ]
    )

    data = receive(http, server, max_batch_size=10)

    assert [(m["data"]["action"], m["data"]["changes"]) for m in data] == [
        ("update", {"rev_": 1}),
        ("delete", None),
    ]


def test_record_pks_are_strings() -> None:
    relation = Relation(
        relation_id=1,
        namespace="public",
        name="t",
        replica_identity="d",
        columns=(Column(name="a", type_oid=23, type_modifier=-1, is_key=True),),
    )
    numeric = Change(
        action="insert",
        relation=relation,
        primary_key=("a",),
        record={"a": 7},
        changes=None,
        commit_lsn=1,
        commit_idx=3,
        commit_time=COMMIT_TIME,
        xid=1,
    )

    group, data = ss.render_change(
        numeric, consumer_id="c", consumer_name="n", database=ss.DatabaseInfo("db", "db", "localhost")
    )

    assert data["metadata"]["record_pks"] == ["7"]
    assert group == ("public.t", "7")


# -- delivery ----------------------------------------------------------------------------


def test_delivery_follows_commit_order(server: ss.SequinServer, http: requests.Session) -> None:
    server.add_changes([change("t-3", 300), change("t-1", 100, 1), change("t-2", 100, 0)])

    data = receive(http, server, max_batch_size=10)

    assert [m["data"]["record"]["id_"] for m in data] == ["t-2", "t-1", "t-3"]


def test_one_message_per_row_in_flight_and_per_batch(server: ss.SequinServer, http: requests.Session) -> None:
    server.add_changes(
        [
            change("t-a", 100),
            change("t-a", 101, action="update", rev=2, changes={"rev_": 1}),
            change("t-b", 102),
            change("t-a", 103, action="delete"),
        ]
    )

    first = receive(http, server, max_batch_size=10)
    assert [(m["data"]["record"]["id_"], m["data"]["action"]) for m in first] == [
        ("t-a", "insert"),
        ("t-b", "insert"),
    ]
    assert receive(http, server, max_batch_size=10) == []

    assert post(http, server, "ack", {"ack_ids": [first[0]["ack_id"]]}).json() == {"success": True}
    second = receive(http, server, max_batch_size=10)
    assert [(m["data"]["record"]["id_"], m["data"]["action"]) for m in second] == [("t-a", "update")]

    post(http, server, "ack", {"ack_ids": [second[0]["ack_id"]]})
    third = receive(http, server, max_batch_size=10)
    assert [(m["data"]["record"]["id_"], m["data"]["action"]) for m in third] == [("t-a", "delete")]
    assert server.pending() == 2


def test_nack_redelivers_at_once_with_the_same_ack_id(
    server: ss.SequinServer, http: requests.Session
) -> None:
    server.add_changes([change("t-1", 100)])
    (first,) = receive(http, server)

    assert post(http, server, "nack", {"ack_ids": [first["ack_id"]]}).json() == {"success": True}
    (again,) = receive(http, server)

    assert again["ack_id"] == first["ack_id"]
    assert again["data"] == first["data"]


def test_visibility_timeout_is_evaluated_at_receive(
    server: ss.SequinServer, http: requests.Session, clock: FakeClock
) -> None:
    server.add_changes([change("t-1", 100)])
    (first,) = receive(http, server)

    clock.now += 30.0
    assert receive(http, server) == []
    assert server.in_flight() == 1

    clock.now += 0.001
    assert server.in_flight() == 1  # nothing expires between receives
    (again,) = receive(http, server)
    assert again["ack_id"] == first["ack_id"]


def test_configurable_visibility_timeout(clock: FakeClock, http: requests.Session) -> None:
    with ss.SequinServer(token=TOKEN, clock=clock, ack_wait_ms=500) as server:
        server.add_changes([change("t-1", 100)])
        (first,) = receive(http, server)
        clock.now += 0.501
        (again,) = receive(http, server)

    assert again["ack_id"] == first["ack_id"]


def test_visibility_timeout_below_500_ms_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 500"):
        ss.SequinServer(token=TOKEN, ack_wait_ms=499)


def test_an_ack_after_expiry_still_removes_the_message(
    server: ss.SequinServer, http: requests.Session, clock: FakeClock
) -> None:
    server.add_changes([change("t-1", 100)])
    (first,) = receive(http, server)
    clock.now += 31
    receive(http, server)

    post(http, server, "ack", {"ack_ids": [first["ack_id"]]})

    assert server.pending() == 0


def test_ack_is_idempotent_and_ignores_unknown_ids(server: ss.SequinServer, http: requests.Session) -> None:
    server.add_changes([change("t-1", 100)])
    (item,) = receive(http, server)
    stranger = str(uuid.uuid4())

    for _ in range(2):
        answer = post(http, server, "ack", {"ack_ids": [item["ack_id"], stranger]})
        assert answer.status_code == 200
        assert answer.json() == {"success": True}
    assert post(http, server, "nack", {"ack_ids": [stranger]}).json() == {"success": True}
    assert server.pending() == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"ack_ids": []},
        {"ack_ids": "3f8e7c52-3d0c-4f3e-9d6a-1c2b3a4d5e6f"},
        {"ack_ids": [""]},
        {"ack_ids": [7]},
        {"ack_ids": [None]},
        {"ack_ids": ["not-a-uuid"]},
        {"ack_ids": ["3f8e7c52-3d0c-4f3e-9d6a-1c2b3a4d5e6f", "nope"]},
        ["3f8e7c52-3d0c-4f3e-9d6a-1c2b3a4d5e6f"],
    ],
)
@pytest.mark.parametrize("action", ["ack", "nack"])
def test_bad_ack_ids_are_400_and_nothing_is_applied(
    server: ss.SequinServer, http: requests.Session, action: str, body: Any
) -> None:
    server.add_changes([change("t-1", 100)])
    (item,) = receive(http, server)
    if isinstance(body, dict) and isinstance(body.get("ack_ids"), list) and len(body["ack_ids"]) == 2:
        body = {"ack_ids": [item["ack_id"], "nope"]}

    answer = post(http, server, action, body)

    assert answer.status_code == 400
    assert answer.json() == {"summary": ss.BAD_ACK_IDS}
    assert server.pending() == 1
    assert server.in_flight() == 1


def test_ack_ids_may_use_other_uuid_spellings(server: ss.SequinServer, http: requests.Session) -> None:
    spellings = [str(uuid.uuid4()).upper(), uuid.uuid4().hex, "urn:uuid:%s" % uuid.uuid4()]

    assert post(http, server, "ack", {"ack_ids": spellings}).status_code == 200


def test_ack_ids_in_the_query_string_are_not_a_list(server: ss.SequinServer, http: requests.Session) -> None:
    answer = http.post(url(server, "ack") + "?ack_ids=%s" % uuid.uuid4(), json={}, headers=AUTH, timeout=10)

    assert answer.status_code == 400


# -- the WAL source, with a fake connection -----------------------------------------------


def _wire_string(text: str) -> bytes:
    return text.encode() + b"\x00"


def _pg_micros(moment: dt.datetime) -> int:
    return (moment - dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(microseconds=1)


class FakeStream:
    """A replication stream that hands out scripted messages, then nothing."""

    def __init__(self, messages: List[Any], fail_start: bool = False) -> None:
        self.messages = list(messages)
        self.fail_start = fail_start
        self.started = threading.Event()
        self.confirmed = threading.Event()
        self.confirms: List[int] = []
        self.closed = False

    def start(self, slot: str, publication: str) -> None:
        assert (slot, publication) == ("slot_x", "pub_x")
        if self.fail_start:
            raise OSError("connection reset")
        self.started.set()

    def read(self, timeout: float) -> Any:
        return self.messages.pop(0) if self.messages else None

    def confirm(self, lsn: int) -> None:
        self.confirms.append(lsn)
        self.confirmed.set()

    def close(self) -> None:
        self.closed = True


class FakeCatalog:
    """Answers the primary-key lookup like PostgreSQL would."""

    def __init__(self) -> None:
        self.closed = False

    def run(self, sql: str, **params: Any) -> List[List[Any]]:
        assert "pg_index" in sql and params == {"relid": "16394"}
        return [["id_"]]

    def close(self) -> None:
        self.closed = True


def test_wal_source_feeds_decoded_changes_and_confirms_whole_transactions(http: requests.Session) -> None:
    columns = b"".join(
        struct.pack(">b", 1) + _wire_string(name) + struct.pack(">Ii", oid, -1)
        for name, oid in [("id_", 1043), ("rev_", 23)]
    )
    relation = (
        b"R" + struct.pack(">I", 16394) + _wire_string("public") + _wire_string("act_ru_ext_task") + b"f"
    )
    relation += struct.pack(">h", 2) + columns
    row = struct.pack(">h", 2) + b"t" + struct.pack(">i", 3) + b"t-1" + b"t" + struct.pack(">i", 1) + b"1"
    micros = _pg_micros(COMMIT_TIME)
    stream = FakeStream(
        [
            XLogData(4000, b"B" + struct.pack(">QqI", 4242, micros, 700)),
            XLogData(4010, relation),
            XLogData(4020, b"I" + struct.pack(">I", 16394) + b"N" + row),
            # Mid-transaction, the server's WAL end is not everything consumed yet.
            Keepalive(9999, reply_requested=True),
            XLogData(4242, b"C" + struct.pack(">bQQq", 0, 4242, 4300, micros)),
            Keepalive(4400, reply_requested=True),
        ]
    )
    catalog = FakeCatalog()
    source = ss.WalSource(lambda: stream, lambda: catalog, slot="slot_x", publication="pub_x")

    with ss.SequinServer(token=TOKEN, source=source) as server:
        assert stream.confirmed.wait(5), "the source confirmed nothing"
        assert [t.name for t in threading.enumerate()].count(ss.WAL_THREAD_NAME) == 1
        data = receive(http, server)

    assert stream.closed and catalog.closed
    assert [t for t in threading.enumerate() if t.name == ss.WAL_THREAD_NAME] == []
    assert 9999 not in stream.confirms
    assert stream.confirms[0] == 4400  # asked for after the commit: the idle server's WAL end
    (item,) = data
    assert item["data"]["record"] == {"id_": "t-1", "rev_": 1}
    assert item["data"]["metadata"]["commit_lsn"] == 4242
    assert item["data"]["metadata"]["record_pks"] == ["t-1"]


def test_wal_source_reconnects_after_a_failure() -> None:
    streams = [FakeStream([], fail_start=True), FakeStream([])]
    opened: List[FakeStream] = []

    def connect() -> FakeStream:
        opened.append(streams[len(opened)])
        return opened[-1]

    source = ss.WalSource(connect, FakeCatalog, slot="slot_x", publication="pub_x")
    source.start(lambda changes: None)
    try:
        assert streams[1].started.wait(5), "no second stream"
    finally:
        source.stop()

    assert source.starts == 1
    assert isinstance(source.last_error, OSError)
    assert streams[0].closed and streams[1].closed


def test_a_consumer_that_resets_its_connection_prints_no_traceback(
    server: ss.SequinServer, capsys: pytest.CaptureFixture[str]
) -> None:
    httpd = server._httpd
    assert httpd is not None
    try:
        raise ConnectionResetError(104, "Connection reset by peer")
    except ConnectionResetError:
        httpd.handle_error(None, ("127.0.0.1", 50000))
    assert capsys.readouterr().err == ""
    try:
        raise ValueError("a fault of the server itself")
    except ValueError:
        httpd.handle_error(None, ("127.0.0.1", 50000))
    assert "ValueError: a fault of the server itself" in capsys.readouterr().err
