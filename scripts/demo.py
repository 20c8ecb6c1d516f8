"""Loan-granting demo: start an engine, run N instances through a Worker, print a summary.

Run it through ``scripts/demo``, which prepares the virtualenv first::

    scripts/demo                       # 200 instances on the Maven-built engine (H2)
    scripts/demo --instances 50 --postgres
    scripts/demo --docker              # the docker/ engine image, through the docker SDK
    scripts/demo --engine-url http://localhost:8080/engine-rest   # an engine you run
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loan_granting

from camunda_ext import CamundaError, Client, CountingMetrics, Worker
from harness import HarnessError, start_engine, start_postgres
from harness.docker_engine import start_docker_engine

logger = logging.getLogger("demo")


@contextlib.contextmanager
def engine_for(args: argparse.Namespace) -> Iterator[Tuple[str, Optional[Tuple[str, str]]]]:
    """Yield ``(rest_url, auth)`` of the engine the arguments ask for; stop what was started."""
    if args.engine_url:
        user = os.environ.get("CAMUNDA_USER")
        auth = (user, os.environ.get("CAMUNDA_PASSWORD", "")) if user else None
        yield args.engine_url, auth
        return
    with contextlib.ExitStack() as stack:
        if args.docker:
            engine: Any = stack.enter_context(start_docker_engine())
        else:
            postgres = stack.enter_context(start_postgres()) if args.postgres else None
            print("Starting the engine (the first run builds it with Maven)...", file=sys.stderr)
            engine = stack.enter_context(start_engine(postgres=postgres))
        yield engine.url, engine.auth


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Run the demo and return its figures."""
    with engine_for(args) as (url, auth):
        setup = Client(url, "demo-setup", auth=auth)
        loan_granting.deploy(setup)
        metrics = CountingMetrics()
        worker = Worker(
            Client(url, "demo-worker", auth=auth, pool_maxsize=args.max_tasks + 4),
            max_tasks=args.max_tasks,
            poll_interval=0.05,
            metrics=metrics,
        )
        for topic, variables in loan_granting.TOPICS.items():
            worker.register_handler(
                topic, loan_granting.HANDLERS[topic], lock_duration=30_000, variables=variables or None
            )
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
