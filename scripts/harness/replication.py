"""A logical replication connection: PostgreSQL's streaming protocol, as Sequin reads the WAL.

Reading a slot with ``pg_logical_slot_get_binary_changes`` decodes the WAL again
from the slot's restart point on every call, and that point moves only every 15 s
or so under load: most of the decoding is repeated. A replication connection
decodes every WAL record once, as Sequin's own does. This module speaks just enough
of protocol 3.0 for that: the startup of a ``replication=database`` connection
(trust authentication, which the test clusters use), ``START_REPLICATION ...
LOGICAL`` with pgoutput, the CopyBoth stream, and standby status updates that
confirm what was consumed so that the slot advances.

Typical use::

    stream = ReplicationStream.connect("127.0.0.1", 5432, "camunda_cdc", "camunda", settings={...})
    stream.start("camunda_ext_tasks_slot", "camunda_ext_tasks_pub")
    while True:
        message = stream.read(timeout=1.0)  # XLogData, Keepalive or None
        ...
        stream.confirm(lsn)
"""

from __future__ import annotations

import re
import socket
import struct
import time
from typing import Dict, Mapping, Optional, Tuple, Union

import attrs

from harness.errors import HarnessError

#: Protocol version 3.0 in a startup message.
_PROTOCOL = 196608
#: Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
_PG_EPOCH_MICROS = 946_684_800 * 1_000_000
#: Slot and publication names this module puts in a command (no quoting needed).
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


@attrs.frozen
class XLogData:
    """One pgoutput message and the WAL position it starts at."""

    lsn: int
    data: bytes


@attrs.frozen
class Keepalive:
    """The server's heartbeat: its WAL end, and whether it wants a status update now."""

    wal_end: int
    reply_requested: bool


StreamMessage = Union[XLogData, Keepalive]


class ReplicationStream:
    """One replication connection to a PostgreSQL server; use from one thread.

    Raises :class:`~harness.errors.HarnessError` for what the server refuses and
    ``OSError`` when the connection breaks.
    """

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self._sock = sock
        self._timeout = timeout  # for the answers before the stream begins
        # Bytes received and not yet parsed: a read that times out midway keeps them.
        self._buffer = bytearray()

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        user: str,
        database: str,
        *,
        settings: Optional[Mapping[str, str]] = None,
        timeout: float = 30.0,
    ) -> ReplicationStream:
        """Open a ``replication=database`` connection; ``settings`` are session parameters."""
        stream = cls(socket.create_connection((host, port), timeout), timeout)
        parameters = {"user": user, "database": database, "replication": "database", **(settings or {})}
        try:
            stream.startup(parameters)
        except BaseException:
            stream.close()
            raise
        return stream

    def startup(self, parameters: Dict[str, str]) -> None:
        """Send the startup message and wait until the server is ready (trust authentication)."""
        body = struct.pack(">I", _PROTOCOL)
        body += b"".join(key.encode() + b"\0" + value.encode() + b"\0" for key, value in parameters.items())
        body += b"\0"
        self._sock.sendall(struct.pack(">I", len(body) + 4) + body)
        while True:
            kind, payload = self._receive(self._timeout)
            if kind == b"R":
                (method,) = struct.unpack_from(">I", payload)
                if method != 0:
                    raise HarnessError(
                        "the server asks for a password (authentication method %d); the replication "
                        "stream supports trust authentication only, as the test clusters use" % method
                    )
            elif kind == b"E":
                raise HarnessError("the replication connection was refused: %s" % _error_text(payload))
            elif kind == b"Z":  # ReadyForQuery
                return

    def start(self, slot: str, publication: str) -> None:
        """Stream the slot's changes from where it was last confirmed, pgoutput version 1.

        Args:
            slot: The logical slot (plugin pgoutput).
            publication: The publication name(s), comma-separated.
        """
        for name in [slot, *publication.split(",")]:
            if not _NAME.match(name):
                raise HarnessError("not a plain name for a slot or publication: %r" % name)
        command = "START_REPLICATION SLOT %s LOGICAL 0/0 (proto_version '1', publication_names '%s')" % (
            slot,
            publication,
        )
        self._send(b"Q", command.encode() + b"\0")
        while True:
            kind, payload = self._receive(self._timeout)
            if kind == b"W":  # CopyBothResponse: the stream begins
                return
            if kind == b"E":
                raise HarnessError("START_REPLICATION refused: %s" % _error_text(payload))
            if kind != b"N":
                raise HarnessError("unexpected answer %r to START_REPLICATION" % kind)

    def read(self, timeout: float) -> Optional[StreamMessage]:
        """The next message of the stream, or None if none came within ``timeout`` seconds."""
        while True:
            try:
                kind, payload = self._receive(timeout)
            except socket.timeout:
                return None
            if kind == b"d":
                if payload[:1] == b"w":
                    lsn, _wal_end, _sent = struct.unpack_from(">QQq", payload, 1)
                    return XLogData(lsn, bytes(payload[25:]))
                if payload[:1] == b"k":
                    wal_end, _sent, reply = struct.unpack_from(">QqB", payload, 1)
                    return Keepalive(wal_end, bool(reply))
                raise HarnessError("unknown replication message %r" % bytes(payload[:1]))
            if kind == b"E":
                raise HarnessError("the replication stream failed: %s" % _error_text(payload))
            if kind == b"c":
                raise HarnessError("the server ended the replication stream")
            # A notice or a parameter change: nothing to do.

    def confirm(self, lsn: int) -> None:
        """Tell the server that everything up to ``lsn`` was received and consumed."""
        now = int(time.time() * 1_000_000) - _PG_EPOCH_MICROS
        self._send(b"d", b"r" + struct.pack(">QQQqB", lsn, lsn, lsn, now, 0))

    def close(self) -> None:
        """Say goodbye (best effort) and close the socket; idempotent."""
        try:
            self._send(b"X", b"")
        except OSError:
            pass
        self._sock.close()

    # ------------------------------------------------------------------ the wire

    def _send(self, kind: bytes, payload: bytes) -> None:
        self._sock.sendall(kind + struct.pack(">I", len(payload) + 4) + payload)

    def _receive(self, timeout: Optional[float]) -> Tuple[bytes, bytes]:
        """One message: its type byte and payload. ``socket.timeout`` leaves the buffer intact."""
        if self._sock.gettimeout() != timeout:
            self._sock.settimeout(timeout)  # a system call: not once per message
        self._fill(5)
        (length,) = struct.unpack_from(">I", self._buffer, 1)
        self._fill(1 + length)
        kind, payload = bytes(self._buffer[:1]), bytes(self._buffer[5 : 1 + length])
        del self._buffer[: 1 + length]
        return kind, payload

    def _fill(self, size: int) -> None:
        while len(self._buffer) < size:
            chunk = self._sock.recv(max(65536, size - len(self._buffer)))
            if not chunk:
                raise ConnectionError("the server closed the replication connection")
            self._buffer += chunk


def _error_text(payload: bytes) -> str:
    """The severity, code and message fields of an ErrorResponse."""
    fields: Dict[str, str] = {}
    for field in payload.split(b"\0"):
        if field:
            fields[chr(field[0])] = field[1:].decode("utf-8", "replace")
    return "%s %s: %s" % (fields.get("S", "ERROR"), fields.get("C", "?"), fields.get("M", ""))
