"""Fixtures that start the real Camunda engine (and PostgreSQL) once per test session.

The engine is the Maven-built jar of tests/engine. Without Java 17+ and Maven
the integration tests skip with that reason, except where
``CAMUNDA_EXT_REQUIRE_ENGINE`` or ``CI`` is set (scripts/test, CI): there a
missing engine fails the run.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator, List

import pytest

from camunda_ext import Client
from harness import Engine, HarnessError, PostgresCluster, start_engine, start_postgres

ROOT = Path(__file__).resolve().parents[2]

BPMN = ROOT / "scripts" / "bpmn"


def _engine_required() -> bool:
    return bool(os.environ.get("CAMUNDA_EXT_REQUIRE_ENGINE") or os.environ.get("CI"))


def _start(**kwargs: object) -> Engine:
    if not _engine_required():
        for tool in ("java", "mvn"):
            if shutil.which(tool) is None:
                pytest.skip("%s is not installed: Java 17+ and Maven build the test engine" % tool)
    try:
        return start_engine(**kwargs)  # type: ignore[arg-type]
    except HarnessError as error:
        if _engine_required():
            pytest.fail("the test engine did not start: %s" % error)
        pytest.skip("the test engine did not start: %s" % error)


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """The engine on in-memory H2, without authentication."""
    running = _start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A throw-away PostgreSQL cluster with ``wal_level=logical``."""
    try:
        cluster = start_postgres()
    except HarnessError as error:
        if _engine_required():
            pytest.fail("PostgreSQL did not start: %s" % error)
        pytest.skip("PostgreSQL did not start: %s" % error)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def pg_engine(postgres: PostgresCluster) -> Iterator[Engine]:
    """The engine on that PostgreSQL."""
    running = _start(postgres=postgres)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def auth_engine() -> Iterator[Engine]:
    """The engine on H2 with HTTP Basic authentication on its REST API."""
    running = _start(basic_auth=True)
    yield running
    running.stop()


def new_client(engine: Engine, worker_id: str = "", **options: object) -> Client:
    """A client of ``engine`` with a fresh worker id."""
    return Client(
        engine.url,
        worker_id or "it-%s" % uuid.uuid4().hex[:8],
        auth=engine.auth,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def client(engine: Engine) -> Iterator[Client]:
    """A client of the H2 engine."""
    with new_client(engine) as made:
        yield made


@pytest.fixture
def deploy(client: Client) -> Iterator[object]:
    """``deploy("loan-granting.bpmn")`` deploys one of scripts/bpmn; removed after the test."""
    deployments = []

    def deploy_file(name: str, engine_client: Client = client) -> str:
        deployment = engine_client.deploy("test-%s" % name, [BPMN / name], enable_duplicate_filtering=False)
        deployments.append((engine_client, deployment.id))
        return deployment.id

    yield deploy_file
    for engine_client, deployment_id in deployments:
        engine_client.delete_deployment(deployment_id, cascade=True)
