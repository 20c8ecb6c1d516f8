"""A fast fake of the Camunda external-task REST API, for measuring client overhead.

Serves a pool of ``--tasks`` no-op tasks of one topic on 127.0.0.1 (HTTP/1.1,
keep-alive, asyncio, one process so that its CPU is not the client's):

- ``POST /engine-rest/external-task/fetchAndLock`` hands out up to ``maxTasks``
  tasks (engine-shaped JSON). With none left it holds the poll for
  ``asyncResponseTimeout`` (at most ``--max-hold`` seconds) and answers ``[]``.
- ``POST .../{id}/complete`` answers 204 (404 for an id not handed out);
  ``failure``, ``bpmnError`` and ``extendLock`` answer 204; ``unlock`` puts the
  task back.

Speaks the :mod:`benchkit` child protocol: ``ready`` (with the port) on start,
``drained`` when the last task is completed (with the time from the first fetch,
its own CPU seconds over that span and the request counts), ``final`` on SIGTERM.

Run by ``bench_overhead.py``; standalone: ``python scripts/fake_engine.py --tasks 1000``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as _dt
import json
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Deque, Dict, List, Optional, Set

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit

PREFIX = b"/engine-rest/external-task/"
TOPIC = "noop"

_OK_JSON = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
_NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"


class FakeEngine:
    """The task pool and request handling. Runs on one event loop; not thread-safe.

    Args:
        tasks: Tasks in the pool.
        max_hold: Longest hold of an empty long poll, in seconds.
    """

    def __init__(self, tasks: int, max_hold: float) -> None:
        self.total = tasks
        self.max_hold = max_hold
        self.available: Deque[str] = collections.deque(str(uuid.uuid4()) for _ in range(tasks))
        self.locked: Set[str] = set()
        self.completed = 0
        self.counts: collections.Counter[str] = collections.Counter()
        self.first_fetch: Optional[float] = None
        self.first_fetch_cpu = 0.0
        self.drained = asyncio.Event()  # signals: every task was completed
        instance = str(uuid.uuid4())
        # Everything of a task's JSON but its id and lock expiry, as the engine sends it.
        self._head = b'{"activityId":"noopTask","activityInstanceId":"noopTask:%s","errorMessage":null,' % (
            instance.encode()
        )
        self._tail = (
            b',"createTime":"2026-12-04T16:48:34.175+0000","processDefinitionId":"bench:1:%s",'
            b'"processDefinitionKey":"bench","processDefinitionVersionTag":null,"processInstanceId":"%s",'
            b'"retries":null,"suspended":false,"workerId":"%%s","topicName":"%s","tenantId":null,'
            b'"variables":{},"priority":0,"businessKey":null,"extensionProperties":{}}'
        ) % (instance.encode(), instance.encode(), TOPIC.encode())

    def render(self, task_ids: List[str], worker_id: str, lock_ms: int) -> bytes:
        expiry = _dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(milliseconds=lock_ms)
        lock = expiry.strftime("%Y-%m-%dT%H:%M:%S.") + "%03d+0000" % (expiry.microsecond // 1000)
        tail = self._tail.replace(b"%s", worker_id.encode(), 1)
        parts = [
            self._head
            + b'"errorDetails":null,"executionId":"%s","id":"%s","lockExpirationTime":"%s"'
            % (task_id.encode(), task_id.encode(), lock.encode())
            + tail
            for task_id in task_ids
        ]
        return b"[" + b",".join(parts) + b"]"

    async def fetch(self, body: bytes) -> bytes:
        request = json.loads(body)
        if self.first_fetch is None:
            self.first_fetch = time.monotonic()
            self.first_fetch_cpu = benchkit.cpu_seconds()
        most = int(request.get("maxTasks", 1))
        topics = request.get("topics") or [{}]
        lock_ms = int(topics[0].get("lockDuration") or 30000)
        taken = [self.available.popleft() for _ in range(min(most, len(self.available)))]
        if not taken:
            hold = min(float(request.get("asyncResponseTimeout") or 0) / 1000.0, self.max_hold)
            if hold > 0:
                await asyncio.sleep(hold)
            return _ok(b"[]")
        self.locked.update(taken)
        return _ok(self.render(taken, str(request.get("workerId", "")), lock_ms))

    def complete(self, task_id: str) -> bytes:
        if task_id not in self.locked:
            self.counts["complete_unknown"] += 1
            body = b'{"type":"RestException","message":"External task %s does not exist"}' % task_id.encode()
            return (_NOT_FOUND % len(body)) + body
        self.locked.discard(task_id)
        self.completed += 1
        if self.completed == self.total:
            self.drained.set()
        return _NO_CONTENT

    async def handle(self, method: bytes, target: bytes, body: bytes) -> bytes:
        path = target.split(b"?", 1)[0]
        if method == b"POST" and path.startswith(PREFIX):
            rest = path[len(PREFIX) :].decode()
            if rest == "fetchAndLock":
                self.counts["fetchAndLock"] += 1
                return await self.fetch(body)
            task_id, _, action = rest.partition("/")
            self.counts[action or "other"] += 1
            if action == "complete":
                return self.complete(task_id)
            if action == "unlock" and task_id in self.locked:
                self.locked.discard(task_id)
                self.available.append(task_id)
            if action in ("failure", "bpmnError", "extendLock", "unlock"):
                return _NO_CONTENT
        self.counts["not_found"] += 1
        message = b'{"type":"NotFoundException","message":"not served by the fake engine"}'
        return (_NOT_FOUND % len(message)) + message

    async def on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                method, target = lines[0].split(b" ", 2)[:2]
                length = 0
                for line in lines[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length) if length else b""
                writer.write(await self.handle(method, target, body))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def figures(self) -> Dict[str, Any]:
        return {"completed": self.completed, "requests": dict(self.counts)}


def _ok(body: bytes) -> bytes:
    return (_OK_JSON % len(body)) + body


async def serve(args: argparse.Namespace) -> None:
    engine = FakeEngine(args.tasks, args.max_hold)
    server = await asyncio.start_server(engine.on_connection, "127.0.0.1", args.port, backlog=1024)
    stopping = asyncio.Event()  # signals: SIGTERM or SIGINT arrived
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    benchkit.announce(port=server.sockets[0].getsockname()[1])
    drained = asyncio.ensure_future(engine.drained.wait())
    stop = asyncio.ensure_future(stopping.wait())
    await asyncio.wait([drained, stop], timeout=args.time_limit, return_when=asyncio.FIRST_COMPLETED)
    if engine.drained.is_set():
        assert engine.first_fetch is not None
        benchkit.emit(
            "drained",
            seconds=time.monotonic() - engine.first_fetch,
            server_cpu=benchkit.cpu_seconds() - engine.first_fetch_cpu,
            **engine.figures(),
        )
    await asyncio.wait([stop], timeout=args.time_limit)
    elapsed = time.monotonic() - engine.first_fetch if engine.first_fetch is not None else 0.0
    server.close()
    benchkit.emit(
        "final",
        seconds=elapsed,
        server_cpu=benchkit.cpu_seconds() - engine.first_fetch_cpu,
        **engine.figures(),
    )


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000, help="no-op tasks in the pool")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    parser.add_argument("--max-hold", type=float, default=5.0, help="longest hold of an empty poll, s")
    parser.add_argument("--time-limit", type=float, default=900.0, help="exit after this many seconds")
    args = parser.parse_args(argv)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
