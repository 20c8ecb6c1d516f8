"""SequinClient: receive, ack, nack against a mocked Sequin, the token rules, the error model."""

from __future__ import annotations

import logging
from typing import Iterator

import pytest
import requests
import responses
from responses import matchers

from camunda_ext import CamundaConnectionError, ConfigurationError, DecodeError
from camunda_ext.sequin import SequinClient, SequinError, parse_message

SEQUIN = "http://sequin.test"
PREFIX = SEQUIN + "/api/http_pull_consumers/camunda-ext-tasks"
TOKEN = "s3cret-token-value"
ACK_ID = "79d4aa2e-5a8b-49c2-ad7c-73ad84cd63c9"

INSERT = {
    "ack_id": ACK_ID,
    "data": {
        "action": "insert",
        "changes": None,
        "record": {"id_": "task-1", "topic_name_": "charge", "retries_": None},
        "metadata": {"table_schema": "public", "table_name": "act_ru_ext_task", "idempotency_key": "MTow"},
    },
}


@pytest.fixture
def sequin() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def client() -> Iterator[SequinClient]:
    made = SequinClient(SEQUIN, "camunda-ext-tasks", token=TOKEN, trust_env=False)
    yield made
    made.close()


def test_receive_sends_batch_size_and_wait_in_milliseconds_with_the_bearer_token(
    sequin: responses.RequestsMock, client: SequinClient
) -> None:
    sequin.post(
        PREFIX + "/receive",
        json={"data": [INSERT]},
        match=[
            matchers.json_params_matcher({"max_batch_size": 25, "wait_for": 20000}),
            matchers.header_matcher({"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"}),
        ],
    )

    (message,) = client.receive(max_batch_size=25, wait_for=20)

    assert message.ack_id == ACK_ID
    assert message.action == "insert"
    assert message.record["id_"] == "task-1"
    assert message.table == ("public", "act_ru_ext_task")
    assert message.idempotency_key == "MTow"
    _, read = sequin.calls[0].request.req_kwargs["timeout"]
    assert read > 20


def test_receive_keeps_batch_and_wait_inside_sequins_bounds(
    sequin: responses.RequestsMock, client: SequinClient
) -> None:
    sequin.post(
        PREFIX + "/receive",
        json={"data": []},
        match=[matchers.json_params_matcher({"max_batch_size": 1000, "wait_for": 500})],
    )

    assert client.receive(max_batch_size=5000, wait_for=0.01) == []


def test_ack_and_nack_send_the_ids_and_skip_empty_lists(
    sequin: responses.RequestsMock, client: SequinClient
) -> None:
    for action in ("ack", "nack"):
        sequin.post(
            PREFIX + "/" + action,
            json={"success": True},
            match=[matchers.json_params_matcher({"ack_ids": [ACK_ID]})],
        )

    client.ack([ACK_ID])
    client.nack([ACK_ID])
    client.ack([])
    client.nack([])

    assert len(sequin.calls) == 2


def test_error_answers_carry_status_and_summary(sequin: responses.RequestsMock, client: SequinClient) -> None:
    sequin.post(PREFIX + "/receive", status=401, json={"summary": "The API token you provided is invalid"})

    with pytest.raises(SequinError) as raised:
        client.receive()

    assert raised.value.status_code == 401
    assert "invalid" in raised.value.summary
    assert TOKEN not in str(raised.value) + repr(raised.value)


def test_transport_faults_and_bad_bodies_are_typed(
    sequin: responses.RequestsMock, client: SequinClient
) -> None:
    sequin.post(PREFIX + "/receive", body=requests.exceptions.ConnectionError("reset"))
    sequin.post(PREFIX + "/receive", body="<html>bad gateway</html>", status=200)
    sequin.post(PREFIX + "/receive", json={"messages": []})
    sequin.post(PREFIX + "/receive", body='{"data": ' + "[" * 100_000 + "]" * 100_000 + "}", status=200)

    with pytest.raises(CamundaConnectionError):
        client.receive()
    with pytest.raises(DecodeError):
        client.receive()
    with pytest.raises(DecodeError):
        client.receive()
    with pytest.raises(DecodeError):  # nested deeper than the JSON parser goes
        client.receive()


@pytest.mark.parametrize(
    "item",
    [
        {"data": {}},
        {"ack_id": ACK_ID},
        {"ack_id": ACK_ID, "data": {"action": "insert"}},
        {"ack_id": ACK_ID, "data": {"action": "update", "record": {}, "changes": [1]}},
        {"ack_id": ACK_ID, "data": {"action": "insert", "record": {}, "metadata": "x"}},
        "not an object",
    ],
)
def test_malformed_messages_raise_decode_error(item: object) -> None:
    with pytest.raises(DecodeError):
        parse_message(item)


def test_the_token_comes_from_the_environment_and_there_is_no_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SEQUIN_API_TOKEN", raising=False)
    with pytest.raises(ConfigurationError, match="SEQUIN_API_TOKEN"):
        SequinClient(SEQUIN, "camunda-ext-tasks")

    monkeypatch.setenv("SEQUIN_API_TOKEN", TOKEN)
    from_env = SequinClient(SEQUIN, "camunda-ext-tasks", trust_env=False)
    with responses.RequestsMock() as sequin:
        sequin.post(
            PREFIX + "/ack",
            json={"success": True},
            match=[matchers.header_matcher({"Authorization": "Bearer " + TOKEN})],
        )
        from_env.ack([ACK_ID])
    assert TOKEN not in repr(from_env)


def test_the_token_never_reaches_logs(
    sequin: responses.RequestsMock, client: SequinClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # A message without an ack_id is logged; a refused token raises.
    sequin.post(PREFIX + "/receive", json={"data": [{"data": {"action": "insert"}}]})
    sequin.post(PREFIX + "/receive", status=401, json={"summary": "The API token you provided is invalid."})

    assert client.receive() == []
    with pytest.raises(SequinError) as refused:
        client.receive()

    assert caplog.records, "nothing was logged: the check below would prove nothing"
    assert TOKEN not in caplog.text
    assert TOKEN not in str(refused.value) and TOKEN not in repr(refused.value)


def test_a_token_with_a_line_break_is_refused_at_once_without_showing_it() -> None:
    # A token read from a file often ends with a newline.
    with pytest.raises(ConfigurationError) as refused:
        SequinClient(SEQUIN, "camunda-ext-tasks", token=TOKEN + "\n", trust_env=False)

    assert TOKEN not in str(refused.value) + repr(refused.value)
