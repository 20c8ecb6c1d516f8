"""Fixtures of the change-data-capture tests: the sql/ migrations on the PostgreSQL engine's
database and the Sequin stand-in fed by its WAL.

Import the fixtures into a test module (``from tests.integration.cdc_fixtures import ...``);
they build on the session fixtures ``postgres`` and ``pg_engine`` of conftest.py.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
import requests

from harness import Engine, PostgresCluster
from harness.migrations import apply_migrations
from harness.sequin_server import SequinServer, start_sequin_server


@pytest.fixture(scope="session")
def cdc_password() -> str:
    """A fresh password for the ``camunda_cdc`` role."""
    return secrets.token_urlsafe(18)


@pytest.fixture(scope="session")
def sequin_token() -> str:
    """A fresh bearer token for the Sequin stand-in."""
    return secrets.token_urlsafe(18)


@pytest.fixture(scope="session")
def cdc_database(postgres: PostgresCluster, pg_engine: Engine, cdc_password: str) -> PostgresCluster:
    """The engine's PostgreSQL with the sql/ migrations applied (the engine created the table)."""
    apply_migrations(postgres, cdc_password=cdc_password)
    return postgres


@pytest.fixture
def sequin_server(
    cdc_database: PostgresCluster, cdc_password: str, sequin_token: str
) -> Iterator[SequinServer]:
    """A Sequin stand-in reading the slot (Sequin's defaults: consumer ``camunda-ext-tasks``,
    30 s visibility timeout); one at a time, since a slot has one reader. ``.token`` is its token."""
    with start_sequin_server(cdc_database, token=sequin_token, cdc_password=cdc_password) as server:
        yield server


class PullClient:
    """A minimal client of the pull API for the tests (the library's own client is tested elsewhere)."""

    def __init__(self, server: SequinServer, token: str) -> None:
        self.base = "%s/api/http_pull_consumers/%s" % (server.url, server.consumer)
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers["Authorization"] = "Bearer %s" % token
        self.backlog: List[Dict[str, Any]] = []  # acked messages that no next_matching() took yet

    def close(self) -> None:
        self.session.close()

    def receive(self, max_batch_size: int = 100, wait_for: Optional[int] = 1000) -> List[Dict[str, Any]]:
        body: Dict[str, Any] = {"max_batch_size": max_batch_size}
        if wait_for is not None:
            body["wait_for"] = wait_for
        answer = self.session.post(self.base + "/receive", json=body, timeout=30)
        answer.raise_for_status()
        data: List[Dict[str, Any]] = answer.json()["data"]
        return data

    def ack(self, *ack_ids: str) -> None:
        answer = self.session.post(self.base + "/ack", json={"ack_ids": list(ack_ids)}, timeout=30)
        answer.raise_for_status()
        assert answer.json() == {"success": True}

    def nack(self, *ack_ids: str) -> None:
        answer = self.session.post(self.base + "/nack", json={"ack_ids": list(ack_ids)}, timeout=30)
        answer.raise_for_status()

    def next_matching(
        self, predicate: Callable[[Dict[str, Any]], bool], timeout: float = 30.0
    ) -> Dict[str, Any]:
        """Return the first message whose ``data`` matches, from the backlog or new receives.

        Everything received is acked at once; messages that did not match stay in the
        backlog for later calls, in delivery order.
        """
        deadline = time.monotonic() + timeout
        while True:
            for index, item in enumerate(self.backlog):
                if predicate(item["data"]):
                    return self.backlog.pop(index)
            if time.monotonic() >= deadline:
                raise AssertionError("no matching message within %.0f s" % timeout)
            items = self.receive()
            if items:
                self.ack(*(item["ack_id"] for item in items))
                self.backlog.extend(items)


@pytest.fixture
def pull(sequin_server: SequinServer, sequin_token: str) -> Iterator[PullClient]:
    """A pull client of the running stand-in."""
    made = PullClient(sequin_server, sequin_token)
    yield made
    made.close()
