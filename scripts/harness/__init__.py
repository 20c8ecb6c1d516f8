"""Test harness: the Camunda 7 test engine and throw-away PostgreSQL clusters.

Typical use in integration tests::

    from harness import start_engine, start_postgres

    with start_postgres() as pg, start_engine(postgres=pg) as engine:
        ...  # talk to engine.url, e.g. http://127.0.0.1:PORT/engine-rest
"""

from __future__ import annotations

from harness.engine import ENGINE_PROJECT, Engine, build_jar, source_hash, start_engine
from harness.errors import HarnessError
from harness.postgres import PostgresCluster, find_postgres_bin, start_postgres

__all__ = [
    "ENGINE_PROJECT",
    "Engine",
    "HarnessError",
    "PostgresCluster",
    "build_jar",
    "find_postgres_bin",
    "source_hash",
    "start_engine",
    "start_postgres",
]
