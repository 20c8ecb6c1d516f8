"""Loan-granting demo: start an engine, run N instances through a Worker, print a summary.

Run it through ``scripts/demo``, which prepares the virtualenv first::

    scripts/demo                       # 200 instances on the Maven-built engine (H2)
    scripts/demo --instances 50 --postgres
    scripts/demo --cdc lock            # the SequinWorker, fed by the WAL (engine on PostgreSQL)
    scripts/demo --docker              # the docker/ engine image, through the docker SDK
    scripts/demo --engine-url http://localhost:8080/engine-rest   # an engine you run
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

import attrs
import loan_granting

from camunda_ext import CamundaError, Client, CountingMetrics, SequinWorker, Worker
from camunda_ext.worker import BaseWorker
from harness import HarnessError, start_engine, start_postgres
from harness.docker_engine import start_docker_engine
from harness.migrations import apply_migrations
from harness.sequin_server import start_sequin_server

logger = logging.getLogger("demo")


@attrs.frozen
class Stack:
    """What the demo runs against: the engine, and for CDC the Sequin stand-in."""

    url: str
    auth: Optional[Tuple[str, str]] = None
    sequin: Any = None


@contextlib.contextmanager
def stack_for(args: argparse.Namespace) -> Iterator[Stack]:
    """Start what the arguments ask for; stop it all afterwards."""
    if args.engine_url:
        user = os.environ.get("CAMUNDA_USER")
        yield Stack(args.engine_url, (user, os.environ.get("CAMUNDA_PASSWORD", "")) if user else None)
        return
    with contextlib.ExitStack() as stack:
        if args.docker:
            engine: Any = stack.enter_context(start_docker_engine())
            yield Stack(engine.url, engine.auth)
            return
        postgres = stack.enter_context(start_postgres()) if args.postgres or args.cdc else None
        print("Starting the engine (the first run builds it with Maven)...", file=sys.stderr)
        engine = stack.enter_context(start_engine(postgres=postgres))
        sequin = None
        if args.cdc:
            # Production runs real Sequin (docker/); here our stand-in reads the same slot.
            password, token = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
            apply_migrations(postgres, cdc_password=password)
            sequin = stack.enter_context(start_sequin_server(postgres, token=token, cdc_password=password))
        yield Stack(engine.url, engine.auth, sequin)


def make_worker(args: argparse.Namespace, stack: Stack, metrics: CountingMetrics) -> BaseWorker:
    """The Worker, or with ``--cdc`` the SequinWorker, with the loan-granting handlers."""
    client = Client(stack.url, "demo-worker", auth=stack.auth, pool_maxsize=args.max_tasks + 4)
    options: Dict[str, Any] = {"max_tasks": args.max_tasks, "poll_interval": 0.05, "metrics": metrics}
    if stack.sequin is None:
        worker: BaseWorker = Worker(client, **options)
    else:
        worker = SequinWorker(
            client,
            stack.sequin.url,
            stack.sequin.consumer,
            token=stack.sequin.token,
            mode=args.cdc,
            **options,
        )
    for topic, variables in loan_granting.TOPICS.items():
        worker.register_handler(
            topic, loan_granting.HANDLERS[topic], lock_duration=30_000, variables=variables or None
        )
    return worker


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Run the demo and return its figures."""
    with stack_for(args) as stack:
        setup = Client(stack.url, "demo-setup", auth=stack.auth)
        loan_granting.deploy(setup)
        metrics = CountingMetrics()
        worker = make_worker(args, stack, metrics)
        progress = loan_granting.Progress(args.instances)
        worker.start()
        try:
            started = time.monotonic()
            ids: List[str] = loan_granting.start_instances(setup, args.instances)
            finished = loan_granting.wait_for_instances(setup, ids, timeout=args.timeout, progress=progress)
            wall = time.monotonic() - started
        finally:
            progress.close()
            worker.stop(timeout=10)
        durations = loan_granting.latencies(setup, ids)
        figures = loan_granting.summary(
            instances=args.instances,
            finished=len(durations),
            wall_seconds=wall,
            counts=metrics.snapshot(),
            durations=durations,
        )
        figures["all_finished"] = finished
        setup.close()
        return figures


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200, help="process instances to run (default 200)")
    parser.add_argument("--max-tasks", type=int, default=20, help="handler threads (default 20)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the instances")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--postgres", action="store_true", help="run the engine on a throw-away PostgreSQL")
    where.add_argument(
        "--cdc",
        choices=["lock", "wake"],
        help="run the SequinWorker in this mode, fed by PostgreSQL's WAL through the Sequin stand-in",
    )
    where.add_argument(
        "--docker", action="store_true", help="run the docker/ engine image via the docker SDK"
    )
    where.add_argument("--engine-url", help="use a running engine (CAMUNDA_USER/CAMUNDA_PASSWORD for auth)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the worker's activity")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        figures = run(args)
    except (HarnessError, CamundaError) as error:
        print("demo failed: %s" % error, file=sys.stderr)
        return 1
    print(loan_granting.format_summary(figures))
    return 0 if figures["all_finished"] and figures["failures"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
