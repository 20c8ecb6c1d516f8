"""A stand-in for Sequin's HTTP pull consumer API, fed by the real WAL of a test cluster.

Sequin itself cannot run on the test machines (no Docker). This server answers the
same requests the same way (checked against Sequin v0.14.6): both path prefixes,
GET and POST ``/receive``, POST ``/ack`` and ``/nack``; the Accept, bearer-token and content-type checks in Sequin's order and with
its error bodies; the ``{"data": [{"ack_id", "data"}]}`` envelope with all twelve
metadata keys; batches of 1..1000; ``wait_for`` returning as soon as anything is
stored; one in-flight message per row; a visibility timeout evaluated at receive;
nack for immediate redelivery with the same ack_id.

Its messages come from a :class:`ChangeSource`. :class:`WalSource` is the real one: a
thread (``sequin-double-wal``) that streams the logical replication slot over a
replication connection as the ``camunda_cdc`` role, as Sequin does, and decodes pgoutput.
Unit tests inject changes with :meth:`SequinServer.add_changes` instead.

Typical use::

    apply_migrations(cluster, cdc_password=password)
    with start_sequin_server(cluster, token=token, cdc_password=password) as sequin:
        ...  # SequinWorker(client, sequin.url, sequin.consumer, token=token)
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import hmac
import json
import logging
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Optional,
    Protocol,
    Sequence,
    Set,
    Tuple,
)
from urllib.parse import parse_qsl, unquote, urlsplit

from harness.errors import HarnessError
from harness.pgoutput import Change, Decoder, Relation
from harness.replication import Keepalive, ReplicationStream, XLogData

if TYPE_CHECKING:
    from harness.postgres import PostgresCluster


class ChangeSource(Protocol):
    """Where a server's changes come from (the WAL, or nothing in unit tests)."""

    def start(self, sink: Callable[[List[Change]], None]) -> None:
        """Start delivering committed changes to ``sink``, in commit order."""

    def stop(self) -> None:
        """Stop delivering; idempotent."""


__all__ = [
    "DEFAULT_ACK_WAIT_MS",
    "ChangeSource",
    "DatabaseInfo",
    "MessageStore",
    "SequinServer",
    "StoredMessage",
    "WalSource",
    "render_change",
    "start_sequin_server",
]

_LOGGER = logging.getLogger(__name__)

DEFAULT_ACK_WAIT_MS = 30000
"""Sequin's default visibility timeout, in milliseconds."""
MIN_ACK_WAIT_MS = 500
"""Sequin's smallest visibility timeout, in milliseconds."""
WAL_THREAD_NAME = "sequin-double-wal"

_MAX_BATCH_SIZE = 1000
_MIN_WAIT_FOR_MS = 500
_MAX_WAIT_FOR_MS = 300000
_WAIT_POLL_S = 0.05  # Sequin checks the store every 50 ms while waiting
_WAL_RETRY_S = 0.5  # pause after a failed read before reconnecting

# Error texts, verbatim from Sequin (the Elixir heredocs end with a newline).
_TOKEN_INSTRUCTIONS = (
    "API tokens are generated in the Sequin console (console.sequin.io) and should be included in the "
    "Authorization header of your request. For example:\n\nAuthorization: Bearer <your-api-token>\n"
)
NO_TOKEN = "Please provide a valid API token in the Authorization header.\n\n%s\n" % _TOKEN_INSTRUCTIONS
NOT_BEARER = (
    "Please provide a valid API token in the Authorization header. Ensure your Authorization value is "
    'prefixed with "Bearer".\n\n%s\n' % _TOKEN_INSTRUCTIONS
)
TWO_HEADERS = "Please provide exactly one Authorization header in your request.\n\n%s\n" % _TOKEN_INSTRUCTIONS
BAD_TOKEN = (
    "The API token you provided is invalid or has expired. Your token may have been revoked or deleted "
    "in the Sequin console.\n"
)
NEED_JSON = "Content-Type: application/json is required"
NO_CONSUMER = "Not found: No `consumer` found matching the provided ID or name"
BAD_BATCH_SIZE = "Invalid `max_batch_size`. `max_batch_size` must be an integer between 1 and 1000."
BAD_WAIT_FOR_FORMAT = (
    "Invalid `wait_for`. When using duration strings, format must be like '60s', '5m', or '1000ms'."
)
BAD_WAIT_FOR_RANGE = (
    "Invalid `wait_for`. Must be between 500 and 300,000 milliseconds, or use duration format like "
    "'60s', '5m', '1000ms'."
)
BAD_ACK_IDS = (
    "Invalid ack_ids. Must send a top-level `ack_ids` property that is a non-empty list of valid UUID strings"
)

_ROUTE = re.compile(r"/api/(?:sequin_streams|http_pull_consumers)/([^/]+)/(receive|ack|nack)")
_ROUTE_METHODS = {"receive": ("GET", "POST"), "ack": ("POST",), "nack": ("POST",)}
_INTEGER = re.compile(r"[+-]?[0-9]+")  # Elixir's Integer.parse/1, whole string
_DURATION = re.compile(r"^([0-9]+)(ms|s|m)?$")
_UUID = re.compile(
    r"(?:urn:uuid:)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}", re.IGNORECASE
)
_UUID_V4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", re.IGNORECASE)
_UNIT_MS = {None: 1, "ms": 1, "s": 1000, "m": 60000}


class _ApiError(Exception):
    """An error answer: ``{"summary": ...}`` for Sequin's own errors, Phoenix's shape otherwise."""

    def __init__(self, status: int, summary: Optional[str] = None, *, phoenix: str = "") -> None:
        super().__init__(summary or phoenix)
        self.status = status
        self.body: Dict[str, Any] = {"errors": {"detail": phoenix}} if phoenix else {"summary": summary}


def _not_found() -> _ApiError:
    return _ApiError(404, phoenix="Not Found")


# -- the message store ----------------------------------------------------------------


class StoredMessage:
    """One message in the store.

    Not thread-safe on its own: :class:`MessageStore` guards it.

    Attributes:
        ack_id: Assigned when stored; the same on every delivery.
        group: ``(table, group_id)``; one message per group may be in flight.
        cursor: ``(commit_lsn, commit_idx)``, the delivery order.
        item: The message as one JSON item of a receive answer, ``{"ack_id", "data"}``,
            encoded once when stored: a message delivered again is not encoded again.
        delivered_at: Clock time of the last delivery while in flight, else None.
    """

    __slots__ = ("ack_id", "cursor", "delivered_at", "group", "item")

    def __init__(self, group: Tuple[str, str], cursor: Tuple[int, int], data: Dict[str, Any]) -> None:
        self.ack_id = str(uuid.uuid4())
        self.group = group
        self.cursor = cursor
        self.item = json.dumps({"ack_id": self.ack_id, "data": data})
        self.delivered_at: Optional[float] = None


class MessageStore:
    """The in-memory message store of one consumer, with Sequin's delivery rules.

    Thread-safe: the WAL thread puts, request threads receive, ack and nack.

    Args:
        ack_wait_ms: Visibility timeout, in milliseconds: a message delivered longer
            ago than this (and not acked) is delivered again. Evaluated at receive.
        clock: Monotonic time in seconds, for the visibility timeout.
    """

    def __init__(
        self, *, ack_wait_ms: int = DEFAULT_ACK_WAIT_MS, clock: Callable[[], float] = time.monotonic
    ):
        if ack_wait_ms < MIN_ACK_WAIT_MS:
            raise ValueError("ack_wait_ms must be at least %d" % MIN_ACK_WAIT_MS)
        self._ack_wait_s = ack_wait_ms / 1000.0
        self._clock = clock
        # Guards _messages, _cursors, _by_ack_id and _in_flight, and every StoredMessage in them.
        self._lock = threading.Lock()
        self._messages: List[StoredMessage] = []  # in cursor order
        self._cursors: List[Tuple[int, int]] = []  # the cursors of _messages, for bisect
        self._by_ack_id: Dict[str, StoredMessage] = {}
        # The messages with a delivered_at, by ack_id: a receive looks at these, not
        # at every stored message (thousands of them behind a backlog).
        self._in_flight: Dict[str, StoredMessage] = {}

    def put(self, messages: Iterable[Tuple[Tuple[str, str], Tuple[int, int], Dict[str, Any]]]) -> None:
        """Store ``(group, cursor, data)`` messages at once (a receive sees all or none of them).

        They are delivered in cursor order.
        """
        stored = [StoredMessage(group, cursor, data) for group, cursor, data in messages]
        with self._lock:
            for message in stored:
                index = bisect.bisect_right(self._cursors, message.cursor)
                self._cursors.insert(index, message.cursor)
                self._messages.insert(index, message)
                self._by_ack_id[message.ack_id] = message

    def count(self) -> int:
        """All stored messages: available, in flight or blocked behind their group."""
        with self._lock:
            return len(self._messages)

    def in_flight(self) -> int:
        """Messages delivered and neither acked, nacked nor expired (as of the last receive)."""
        with self._lock:
            return len(self._in_flight)

    def receive(self, batch_size: int) -> List[StoredMessage]:
        """Release expired deliveries, then take up to ``batch_size`` deliverable messages.

        A message is deliverable when it is not in flight, no message of its group is
        in flight, and no message of its group is already in this batch; the walk
        follows cursor order and skips blocked groups.
        """
        with self._lock:
            now = self._clock()
            for message in list(self._in_flight.values()):
                assert message.delivered_at is not None
                if now - message.delivered_at > self._ack_wait_s:
                    message.delivered_at = None  # visibility timeout: available again
                    del self._in_flight[message.ack_id]
            busy: Set[Tuple[str, str]] = {message.group for message in self._in_flight.values()}
            batch: List[StoredMessage] = []
            for message in self._messages:
                if len(batch) >= batch_size:
                    break
                if message.delivered_at is None and message.group not in busy:
                    message.delivered_at = now
                    self._in_flight[message.ack_id] = message
                    busy.add(message.group)
                    batch.append(message)
            return batch

    def ack(self, ack_ids: Iterable[str]) -> int:
        """Remove messages for good; unknown ids are ignored. Returns how many were removed."""
        removed = 0
        with self._lock:
            for ack_id in ack_ids:
                message = self._by_ack_id.pop(ack_id, None)
                if message is None:
                    continue
                self._in_flight.pop(ack_id, None)
                index = bisect.bisect_left(self._cursors, message.cursor)
                while self._messages[index] is not message:
                    index += 1
                del self._messages[index]
                del self._cursors[index]
                removed += 1
        return removed

    def nack(self, ack_ids: Iterable[str]) -> int:
        """Make messages available again at once; unknown ids are ignored. Returns how many."""
        released = 0
        with self._lock:
            for ack_id in ack_ids:
                message = self._in_flight.pop(ack_id, None)
                if message is not None:
                    message.delivered_at = None
                    released += 1
        return released

    def snapshot(self) -> List[Dict[str, Any]]:
        """Copies of the stored messages' data, in delivery order (for tests)."""
        with self._lock:
            return [json.loads(m.item)["data"] for m in self._messages]


# -- rendering ----------------------------------------------------------------------


class DatabaseInfo:
    """What ``metadata.database`` says about the source database. Immutable.

    Args:
        name: Sequin's name for the database (``database.name``, ``database_name``).
        database: The PostgreSQL database name.
        hostname: The host Sequin connects to.
        id: A UUID; a random one when None.
    """

    __slots__ = ("database", "hostname", "id", "name")

    def __init__(self, name: str, database: str, hostname: str, id: Optional[str] = None) -> None:
        self.name = name
        self.database = database
        self.hostname = hostname
        self.id = id or str(uuid.uuid4())


def _utc_iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def render_change(
    change: Change, *, consumer_id: str, consumer_name: str, database: DatabaseInfo
) -> Tuple[Tuple[str, str], Dict[str, Any]]:
    """Render a change as Sequin's default message.

    Args:
        change: A committed row change.
        consumer_id: The consumer's UUID.
        consumer_name: The consumer's name.
        database: The source database's description.

    Returns:
        ``(group, data)``: the group is the table and the primary-key values joined
        with ``:``; ``data`` holds ``action``, ``changes``, ``metadata`` and ``record``.
    """
    relation = change.relation
    record_pks = change.record_pks
    key = "%d:%d" % (change.commit_lsn, change.commit_idx)
    metadata = {
        "table_schema": relation.namespace,
        "table_name": relation.name,
        "commit_timestamp": _utc_iso(change.commit_time),
        "commit_lsn": change.commit_lsn,
        "commit_idx": change.commit_idx,
        "database_name": database.name,
        "transaction_annotations": None,
        "idempotency_key": base64.b64encode(key.encode("ascii")).decode("ascii"),
        "record_pks": record_pks,
        "enrichment": None,
        "consumer": {"id": consumer_id, "name": consumer_name, "annotations": {}},
        "database": {
            "id": database.id,
            "name": database.name,
            "annotations": {},
            "database": database.database,
            "hostname": database.hostname,
        },
    }
    data = {
        "action": change.action,
        "changes": change.changes if change.action == "update" else None,
        "metadata": metadata,
        "record": change.record,
    }
    group = ("%s.%s" % (relation.namespace, relation.name), ":".join(record_pks))
    return group, data


# -- request handling -------------------------------------------------------------------


def _accepts_json(values: List[str]) -> bool:
    """Phoenix's ``accepts ["json"]``: only the first Accept header counts."""
    if not values or values[0].strip() in ("", "*/*"):
        return True
    for entry in values[0].split(","):
        media = entry.split(";", 1)[0].strip().lower()
        if media in ("*/*", "application/*", "application/json"):
            return True
    return False


def _is_json_media(content_type: str) -> bool:
    """Whether Plug.Parsers' JSON parser takes a body of this content type."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _parse_batch_size(params: Dict[str, Any]) -> int:
    if "batch_size" in params:  # the old name wins
        value = params["batch_size"]
    elif "max_batch_size" in params:
        value = params["max_batch_size"]
    else:
        return 1
    if isinstance(value, str):
        if not _INTEGER.fullmatch(value):
            raise _ApiError(400, BAD_BATCH_SIZE)
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float):
        raise _ApiError(400, BAD_BATCH_SIZE)
    else:
        # Sequin's handler crashes on null, booleans, lists and objects.
        raise _ApiError(500, phoenix="Internal Server Error")
    if not 1 <= number <= _MAX_BATCH_SIZE:
        raise _ApiError(400, BAD_BATCH_SIZE)
    return number


def _parse_wait_for(params: Dict[str, Any]) -> Optional[float]:
    """Return the wait in milliseconds, or None for no wait."""
    value = params.get("wait_for")
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise _ApiError(400, BAD_WAIT_FOR_FORMAT)
        value = int(match.group(1)) * _UNIT_MS[match.group(2)]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None  # null (or any other JSON type) means no wait
    if not _MIN_WAIT_FOR_MS <= value <= _MAX_WAIT_FOR_MS:
        raise _ApiError(400, BAD_WAIT_FOR_RANGE)
    return float(value)


def _parse_ack_ids(params: Dict[str, Any]) -> List[str]:
    ack_ids = params.get("ack_ids")
    if (
        not isinstance(ack_ids, list)
        or not ack_ids
        or not all(isinstance(a, str) and a and _UUID.fullmatch(a) for a in ack_ids)
    ):
        raise _ApiError(400, BAD_ACK_IDS)
    return ack_ids


class _Handler(BaseHTTPRequestHandler):
    """One HTTP exchange; the server's :class:`SequinServer` does the work."""

    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: with Nagle's algorithm the body would wait
    # for the client's delayed ACK of the headers, 40 ms an answer (Sequin's server
    # sends with TCP_NODELAY).
    disable_nagle_algorithm = True
    server: _HttpServer

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        try:
            status, answer = self.server.app.handle(self.command, self.path, self.headers, body)
        except Exception:
            _LOGGER.exception("the Sequin stand-in failed on %s %s", self.command, urlsplit(self.path).path)
            status, answer = 500, json.dumps({"errors": {"detail": "Internal Server Error"}})
        payload = answer.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        # The default writes to stderr; requests are logged (without headers) by the app.
        pass


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True  # a long wait_for must not hold up stop()
    allow_reuse_address = False
    app: SequinServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A consumer stopped during a long receive resets its connection: normal at
        # shutdown, and not worth the traceback socketserver prints to stderr.
        if isinstance(sys.exc_info()[1], ConnectionError):
            _LOGGER.debug("consumer %s went away mid-request", client_address)
            return
        super().handle_error(request, client_address)


class SequinServer:
    """A Sequin-compatible pull consumer over HTTP on 127.0.0.1, with one consumer.

    Thread-safe: requests are served on their own threads, the source feeds from its own.

    Args:
        token: The bearer token requests must carry.
        consumer: The consumer's (sink's) name, usable in the URL.
        consumer_id: The consumer's UUID (also usable in the URL); random when None.
        database: What ``metadata.database`` says; a placeholder when None.
        ack_wait_ms: Visibility timeout in milliseconds (Sequin: 30000, at least 500).
        clock: Monotonic time in seconds, for the visibility timeout and ``wait_for``
            (tests inject one).
        pause: How a waiting receive waits between store checks:
            ``pause(seconds, stopped)`` returns True to end the wait. The default waits
            up to ``seconds`` for ``stopped`` (set by :meth:`stop`); tests inject one
            that moves their clock instead.
        source: Where changes come from (kept as ``.source``); started by :meth:`start`. None: only
            :meth:`add_changes` feeds the store.
        port: TCP port; a free one when None.
    """

    def __init__(
        self,
        *,
        token: str,
        consumer: str = "camunda-ext-tasks",
        consumer_id: Optional[str] = None,
        database: Optional[DatabaseInfo] = None,
        ack_wait_ms: int = DEFAULT_ACK_WAIT_MS,
        clock: Callable[[], float] = time.monotonic,
        pause: Callable[[float, threading.Event], bool] = lambda seconds, stopped: stopped.wait(seconds),
        source: Optional[ChangeSource] = None,
        port: Optional[int] = None,
    ) -> None:
        if not token:
            raise ValueError("a token is required")
        self._token = token.encode("utf-8")
        self.consumer = consumer
        self.consumer_id = consumer_id or str(uuid.uuid4())
        self.database = database or DatabaseInfo("camunda", "camunda", "127.0.0.1")
        self.store = MessageStore(ack_wait_ms=ack_wait_ms, clock=clock)
        self._clock = clock
        self._pause = pause
        self.source = source
        self._port = port or 0
        self._httpd: Optional[_HttpServer] = None
        self._thread: Optional[threading.Thread] = None
        self._stopped = threading.Event()  # set by stop(): ends waits of receive calls
        self._lifecycle = threading.Lock()  # guards start/stop

    def __repr__(self) -> str:
        return "SequinServer(url=%r, consumer=%r)" % (self.url if self._httpd else None, self.consumer)

    @property
    def token(self) -> str:
        """The bearer token clients must send (never logged)."""
        return self._token.decode("utf-8")

    @property
    def port(self) -> int:
        """The TCP port, once started."""
        if self._httpd is None:
            raise HarnessError("the Sequin stand-in is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:7376``."""
        return "http://127.0.0.1:%d" % self.port

    def start(self) -> SequinServer:
        """Bind, serve on a thread, and start the change source.

        Returns:
            This server, for chaining.
        """
        with self._lifecycle:
            if self._httpd is not None:
                raise HarnessError("the Sequin stand-in is already started")
            self._stopped.clear()
            httpd = _HttpServer(("127.0.0.1", self._port), _Handler)
            httpd.app = self
            self._httpd = httpd
            self._thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="sequin-double-http",
                daemon=True,
            )
            self._thread.start()
            if self.source is not None:
                self.source.start(self.add_changes)
        _LOGGER.info("Sequin stand-in serving consumer %s at %s", self.consumer, self.url)
        return self

    def stop(self) -> None:
        """Stop the source and the HTTP server; idempotent."""
        with self._lifecycle:
            httpd, self._httpd = self._httpd, None
            if httpd is None:
                return
            self._stopped.set()
            if self.source is not None:
                self.source.stop()
            httpd.shutdown()
            httpd.server_close()
            if self._thread is not None:
                self._thread.join(timeout=10)
        _LOGGER.info("Sequin stand-in for consumer %s stopped", self.consumer)

    def __enter__(self) -> SequinServer:
        if self._httpd is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- feeding and introspection ----------------------------------------------------

    def add_changes(self, changes: Iterable[Change]) -> None:
        """Render and store committed changes (the change source's sink): a transaction's at once."""
        messages = []
        for change in changes:
            group, data = render_change(
                change, consumer_id=self.consumer_id, consumer_name=self.consumer, database=self.database
            )
            messages.append((group, (change.commit_lsn, change.commit_idx), data))
        self.store.put(messages)

    def pending(self) -> int:
        """How many messages are stored (not acked yet), in flight or not."""
        return self.store.count()

    def in_flight(self) -> int:
        """How many messages are delivered and not acked, nacked or expired."""
        return self.store.in_flight()

    def messages(self) -> List[Dict[str, Any]]:
        """The stored messages' data in delivery order (copies)."""
        return self.store.snapshot()

    # -- the API --------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Any, body: bytes) -> Tuple[int, str]:
        """Answer one request.

        Args:
            method: The HTTP method.
            target: The request target (path and query string).
            headers: An ``email.message.Message``-like object (``get_all``).
            body: The raw request body.

        Returns:
            ``(status, JSON text of the body)``.
        """
        url = urlsplit(target)
        try:
            status, answer = self._dispatch(method, url.path, url.query, headers, body)
        except _ApiError as error:
            status, answer = error.status, json.dumps(error.body)
        _LOGGER.debug("%s %s -> %d", method, url.path, status)
        return status, answer

    def _dispatch(self, method: str, path: str, query: str, headers: Any, body: bytes) -> Tuple[int, str]:
        content_types = headers.get_all("Content-Type") or []
        body_params: Dict[str, Any] = {}
        # Plug.Parsers runs in the endpoint, before routing: a JSON body that does not
        # parse is a 400 whatever the route.
        if body and content_types and _is_json_media(content_types[0]):
            try:
                parsed = json.loads(body.decode("utf-8"))
            except ValueError:
                raise _ApiError(400, phoenix="Bad Request") from None
            body_params = parsed if isinstance(parsed, dict) else {"_json": parsed}
        route = _ROUTE.fullmatch(path)
        if route is None or method not in _ROUTE_METHODS[route.group(2)]:
            raise _not_found()
        if not _accepts_json(headers.get_all("Accept") or []):
            raise _ApiError(406, phoenix="Not Acceptable")
        self._authenticate(headers.get_all("Authorization") or [])
        if method == "POST" and not any("application/json" in value for value in content_types):
            raise _ApiError(400, NEED_JSON)
        params = dict(parse_qsl(query, keep_blank_values=True))
        params.update(body_params)
        self._find_consumer(unquote(route.group(1)))
        action = route.group(2)
        if action == "receive":
            return 200, self._receive(params)
        ack_ids = _parse_ack_ids(params)
        if action == "ack":
            self.store.ack(ack_ids)
        else:
            self.store.nack(ack_ids)
        return 200, json.dumps({"success": True})

    def _authenticate(self, values: List[str]) -> None:
        if not values:
            raise _ApiError(401, NO_TOKEN)
        if len(values) > 1:
            raise _ApiError(401, TWO_HEADERS)
        if not values[0].startswith("Bearer "):
            raise _ApiError(401, NOT_BEARER)
        if not hmac.compare_digest(values[0][len("Bearer ") :].encode("utf-8"), self._token):
            raise _ApiError(401, BAD_TOKEN)

    def _find_consumer(self, id_or_name: str) -> None:
        if _UUID_V4.fullmatch(id_or_name):
            found = id_or_name.lower() == self.consumer_id.lower()
        else:
            found = id_or_name == self.consumer
        if not found:
            raise _ApiError(404, NO_CONSUMER)

    def _receive(self, params: Dict[str, Any]) -> str:
        batch_size = _parse_batch_size(params)
        wait_ms = _parse_wait_for(params)
        if wait_ms is not None:
            self._wait(wait_ms / 1000.0)
        batch = self.store.receive(batch_size)
        return '{"data": [%s]}' % ", ".join(m.item for m in batch)

    def _wait(self, seconds: float) -> None:
        """Wait until the store holds anything, checking every 50 ms, at most ``seconds``."""
        deadline = self._clock() + seconds
        while self.store.count() == 0:
            remaining = deadline - self._clock()
            if remaining <= 0 or self._pause(min(_WAIT_POLL_S, remaining), self._stopped):
                return


# -- the WAL source ---------------------------------------------------------------------

_PRIMARY_KEY_SQL = (
    "SELECT a.attname FROM pg_catalog.pg_index i "
    "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
    "WHERE i.indrelid = CAST(:relid AS oid) AND i.indisprimary ORDER BY a.attnum"
)
# Value formats that pgoutput's text output depends on (see harness.pgoutput), as
# parameters of the replication session.
_SESSION_SETTINGS = {
    "DateStyle": "ISO, MDY",
    "TimeZone": "UTC",
    "IntervalStyle": "postgres",
    "extra_float_digits": "3",
}
_STATUS_INTERVAL_S = 1.0  # how often the stream confirms what it consumed
_READ_TIMEOUT_S = 0.2  # longest wait for a message before looking at the stop flag


class WalSource:
    """Streams a logical replication slot with pgoutput and hands out committed changes.

    One thread (``sequin-double-wal``) holds a replication connection
    (:mod:`harness.replication`), so that each WAL record is decoded once, as Sequin
    does. About once a second it confirms the end of the last transaction it handed
    out (between transactions, the server's WAL end), and the slot advances. A broken
    stream is logged, dropped and reopened after a pause; the slot then sends again
    what was not confirmed.

    A stream cannot run queries, so the primary keys of relations are read through a
    second, ordinary connection (pg8000, a test-only dependency).

    Thread-safe: start and stop from any thread.

    Args:
        stream: Opens a :class:`~harness.replication.ReplicationStream` as the replication role.
        catalog: Opens a ``pg8000.native.Connection`` for the primary-key lookups.
        slot: The slot name.
        publication: The publication name(s), comma-separated.
        tables: Only changes of these ``schema.table`` names are handed out; all when None.
    """

    def __init__(
        self,
        stream: Callable[[], ReplicationStream],
        catalog: Callable[[], Any],
        *,
        slot: str,
        publication: str,
        tables: Optional[Sequence[str]] = None,
    ) -> None:
        self._open_stream = stream
        self._open_catalog = catalog
        self._slot = slot
        self._publication = publication
        self._tables = frozenset(tables) if tables is not None else None
        self._stop = threading.Event()  # set by stop(); also the thread's interruptible sleep
        self._thread: Optional[threading.Thread] = None
        self._stream: Optional[ReplicationStream] = None  # used by the thread only
        self._catalog: Any = None  # used by the thread only
        self.starts = 0  # streams begun, for tests that wait for the source to be under way
        self.last_error: Optional[BaseException] = None

    def start(self, sink: Callable[[List[Change]], None]) -> None:
        """Start the streaming thread; ``sink`` gets each transaction's changes."""
        if self._thread is not None:
            raise HarnessError("the WAL source is already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(sink,), name=WAL_THREAD_NAME, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop streaming and close the connections; idempotent."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                _LOGGER.warning("the WAL thread did not stop within %.0f s", timeout)

    def _run(self, sink: Callable[[List[Change]], None]) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._follow(sink)
                except Exception as error:
                    self.last_error = error
                    _LOGGER.warning(
                        "streaming slot %s failed; reconnecting in %.1f s",
                        self._slot,
                        _WAL_RETRY_S,
                        exc_info=True,
                    )
                    self._close()
                    self._stop.wait(_WAL_RETRY_S)
        finally:
            self._close()

    def _follow(self, sink: Callable[[List[Change]], None]) -> None:
        """Stream until stopped; raises when the stream breaks."""
        # A transaction cut off with a broken stream comes again whole: start clean.
        decoder = Decoder(primary_key=self._primary_key)
        self._stream = stream = self._open_stream()
        stream.start(self._slot, self._publication)
        self.starts += 1
        consumed = 0  # the WAL position up to which everything was handed out
        confirmed_at = time.monotonic()
        while not self._stop.is_set():
            message = stream.read(_READ_TIMEOUT_S)
            reply = False
            if isinstance(message, XLogData):
                changes = decoder.feed(message.data)
                if self._tables is not None:
                    changes = [
                        c
                        for c in changes
                        if "%s.%s" % (c.relation.namespace, c.relation.name) in self._tables
                    ]
                if changes:
                    sink(changes)
                consumed = max(consumed, decoder.committed_through)
            elif isinstance(message, Keepalive):
                reply = message.reply_requested
                if not decoder.in_transaction:
                    consumed = max(consumed, message.wal_end)
            # Nothing is confirmed before the first position is known: a status
            # update must never move the slot back.
            if consumed and (reply or time.monotonic() - confirmed_at >= _STATUS_INTERVAL_S):
                stream.confirm(consumed)
                confirmed_at = time.monotonic()

    def _primary_key(self, relation: Relation) -> Optional[List[str]]:
        if self._catalog is None:
            self._catalog = self._open_catalog()
        rows = self._catalog.run(_PRIMARY_KEY_SQL, relid=str(relation.relation_id))
        return [str(row[0]) for row in rows] or None

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        catalog, self._catalog = self._catalog, None
        for connection in (stream, catalog):
            if connection is not None:
                try:
                    connection.close()
                except Exception:
                    _LOGGER.debug("closing a slot connection failed", exc_info=True)


def _stream_connect(cluster: PostgresCluster, user: str) -> Callable[[], ReplicationStream]:
    def connect() -> ReplicationStream:
        return ReplicationStream.connect(
            cluster.host,
            cluster.port,
            user,
            cluster.dbname,
            settings={"application_name": "sequin-double", **_SESSION_SETTINGS},
        )

    return connect


def _pg8000_connect(cluster: PostgresCluster, user: str, password: str) -> Callable[[], Any]:
    try:
        import pg8000.native
    except ImportError as error:
        raise HarnessError("pg8000 is not installed: pip install pg8000") from error

    def connect() -> Any:
        return pg8000.native.Connection(
            user,
            password=password,
            host=cluster.host,
            port=cluster.port,
            database=cluster.dbname,
            application_name="sequin-double-catalog",
            timeout=30,
        )

    return connect


def start_sequin_server(
    cluster: PostgresCluster,
    *,
    token: str,
    cdc_password: str,
    consumer: str = "camunda-ext-tasks",
    slot: str = "camunda_ext_tasks_slot",
    publication: str = "camunda_ext_tasks_pub",
    ack_wait_ms: int = DEFAULT_ACK_WAIT_MS,
    port: Optional[int] = None,
    cdc_user: str = "camunda_cdc",
    tables: Optional[Sequence[str]] = ("public.act_ru_ext_task",),
) -> SequinServer:
    """Start a Sequin-compatible pull server fed by the cluster's WAL.

    The migrations (``harness.migrations.apply_migrations``) must have created the
    role, publication and slot. Changes committed before the server starts but after
    the slot was created are delivered too (the slot keeps them).

    Args:
        cluster: The started cluster holding the engine database.
        token: The bearer token clients must send.
        cdc_password: The password of the replication role.
        consumer: The consumer name in URLs (Sequin's sink name).
        slot: The logical replication slot.
        publication: The publication.
        ack_wait_ms: Visibility timeout in milliseconds (at least 500).
        port: TCP port on 127.0.0.1; a free one when None.
        cdc_user: The replication role.
        tables: The ``schema.table`` names the consumer includes.

    Returns:
        The running server; stop it (or use it as a context manager).
    """
    source = WalSource(
        _stream_connect(cluster, cdc_user),
        _pg8000_connect(cluster, cdc_user, cdc_password),
        slot=slot,
        publication=publication,
        tables=tables,
    )
    database = DatabaseInfo(cluster.dbname, cluster.dbname, cluster.host)
    server = SequinServer(
        token=token,
        consumer=consumer,
        database=database,
        ack_wait_ms=ack_wait_ms,
        source=source,
        port=port,
    )
    return server.start()
