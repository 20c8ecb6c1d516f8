"""Shared fixtures of the unit tests: a mocked engine, a client on it, the real engine payloads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import responses

from camunda_ext import Client
from tests.unit.worker_fixtures import (  # noqa: F401  (pytest finds fixtures by their names here)
    clock,
    jitter,
    no_leaked_threads,
    ordered_engine,
    rest_client,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "engine"

#: The REST root every unit test talks to; nothing listens there, responses answers.
BASE_URL = "http://engine.test/engine-rest"
WORKER_ID = "unit-worker"


def load_fixture(name: str) -> Any:
    """The JSON of ``tests/fixtures/engine/<name>`` (``.json`` may be left out)."""
    if not name.endswith(".json"):
        name += ".json"
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@pytest.fixture
def fixture() -> Callable[[str], Any]:
    """A loader of the captured engine payloads: ``fixture("external_task")``."""
    return load_fixture


@pytest.fixture
def engine() -> Iterator[responses.RequestsMock]:
    """The mocked engine; every registered answer must be asked for."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def client(engine: responses.RequestsMock) -> Iterator[Client]:
    """A client of :data:`BASE_URL` with worker id :data:`WORKER_ID`, closed afterwards.

    It ignores the proxies and netrc of the machine running the tests; test_http
    covers the environment.
    """
    with Client(BASE_URL, WORKER_ID, trust_env=False) as client:
        yield client
