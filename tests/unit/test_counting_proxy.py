"""The load test's counting proxy: what it relays, counts and balances."""

from __future__ import annotations

import http.client
import http.server
import threading
from typing import Iterator, List, Tuple

import benchkit
import pytest


class _NamedServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.name = name


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the engine's Tomcat

    def do_GET(self) -> None:
        body = self.server.name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[List[Tuple[str, int]]]:
    started = [_NamedServer(name) for name in ("node-a", "node-b")]
    threads = [threading.Thread(target=server.serve_forever, daemon=True) for server in started]
    for thread in threads:
        thread.start()
    yield [("127.0.0.1", server.server_address[1]) for server in started]
    for server in started:
        server.shutdown()
        server.server_close()


def _get(connection: http.client.HTTPConnection, path: str) -> str:
    connection.request("GET", path)
    return connection.getresponse().read().decode()


def test_each_new_connection_goes_to_the_next_server(servers) -> None:
    with benchkit.CountingProxy(*servers) as proxy:
        answers = []
        for _ in range(4):
            connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            answers.append(_get(connection, "/engine-rest/engine"))
            connection.close()
    assert answers == ["node-a", "node-b", "node-a", "node-b"]


def test_the_requests_of_one_connection_stay_on_its_server(servers) -> None:
    with benchkit.CountingProxy(*servers) as proxy:
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        answers = [_get(connection, "/engine-rest/engine") for _ in range(3)]
        connection.close()
        counts = proxy.snapshot()
    assert answers == ["node-a"] * 3
    assert counts["by_kind"] == {"GET /engine": 3}


def test_a_proxy_needs_a_server() -> None:
    with pytest.raises(ValueError):
        benchkit.CountingProxy()
