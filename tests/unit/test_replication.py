"""The replication stream's wire protocol, against a scripted server on a socket pair."""

from __future__ import annotations

import socket
import struct
from typing import Dict, Iterator, List, Tuple

import pytest

from harness.errors import HarnessError
from harness.replication import Keepalive, ReplicationStream, XLogData

READY = b"Z" + struct.pack(">I", 5) + b"I"


def message(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack(">I", len(payload) + 4) + payload


def auth(method: int) -> bytes:
    return message(b"R", struct.pack(">I", method))


def error(text: str) -> bytes:
    return message(b"E", b"SERROR\0C42704\0M" + text.encode() + b"\0\0")


def copy_data(payload: bytes) -> bytes:
    return message(b"d", payload)


class Server:
    """The server end of a socket pair: reads what the client sent, sends scripted bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(5)

    def startup(self) -> Dict[str, str]:
        """The parameters of the client's startup message."""
        (length,) = struct.unpack(">I", self.sock.recv(4))
        body = self._exactly(length - 4)
        assert struct.unpack_from(">I", body)[0] == 196608
        fields = body[4:-2].split(b"\0")
        return {fields[i].decode(): fields[i + 1].decode() for i in range(0, len(fields), 2)}

    def next(self) -> Tuple[bytes, bytes]:
        """The client's next message."""
        head = self._exactly(5)
        (length,) = struct.unpack_from(">I", head, 1)
        return head[:1], self._exactly(length - 4)

    def _exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            data += self.sock.recv(size - len(data))
        return data


@pytest.fixture
def pair() -> Iterator[Tuple[ReplicationStream, Server]]:
    client, server = socket.socketpair()
    stream = ReplicationStream(client, timeout=5)
    yield stream, Server(server)
    stream.close()
    server.close()


def test_startup_sends_the_replication_parameters_and_waits_for_ready(pair) -> None:
    stream, server = pair
    server.sock.sendall(auth(0) + message(b"S", b"server_version\x0015\0") + READY)

    stream.startup({"user": "camunda_cdc", "database": "camunda", "replication": "database"})

    assert server.startup() == {"user": "camunda_cdc", "database": "camunda", "replication": "database"}


def test_a_password_request_is_refused_with_a_clear_error(pair) -> None:
    stream, server = pair
    server.sock.sendall(auth(10))  # SASL

    with pytest.raises(HarnessError, match="trust authentication only"):
        stream.startup({"user": "camunda_cdc"})


def test_start_sends_the_command_and_a_refusal_names_the_reason(pair) -> None:
    stream, server = pair
    server.sock.sendall(error('replication slot "slot_x" does not exist'))

    with pytest.raises(HarnessError, match='slot "slot_x" does not exist'):
        stream.start("slot_x", "pub_a,pub_b")

    kind, payload = server.next()
    assert kind == b"Q"
    assert payload == (
        b"START_REPLICATION SLOT slot_x LOGICAL 0/0 (proto_version '1', publication_names 'pub_a,pub_b')\0"
    )


@pytest.mark.parametrize(("slot", "publication"), [("slot'x", "pub"), ("slot", "pub; DROP")])
def test_names_that_would_need_quoting_are_refused(pair, slot: str, publication: str) -> None:
    stream, _ = pair
    with pytest.raises(HarnessError, match="not a plain name"):
        stream.start(slot, publication)


def test_the_stream_yields_data_and_keepalives_even_when_split_across_reads(pair) -> None:
    stream, server = pair
    server.sock.sendall(message(b"W", b"\0\0\0"))
    stream.start("slot_x", "pub_x")
    data = copy_data(b"w" + struct.pack(">QQq", 4242, 4300, 0) + b"C-message")
    keepalive = copy_data(b"k" + struct.pack(">QqB", 4400, 0, 1))

    server.sock.sendall(data[:7])  # half a message: the read times out and keeps it
    assert stream.read(timeout=0.01) is None
    server.sock.sendall(data[7:] + keepalive)
    read: List[object] = [stream.read(timeout=5), stream.read(timeout=5)]

    assert read == [XLogData(4242, b"C-message"), Keepalive(4400, reply_requested=True)]


def test_confirm_sends_a_standby_status_update(pair) -> None:
    stream, server = pair

    stream.confirm(4400)

    kind, payload = server.next()
    assert kind == b"d" and payload[:1] == b"r"
    written, flushed, applied, _sent, reply = struct.unpack(">QQQqB", payload[1:])
    assert (written, flushed, applied, reply) == (4400, 4400, 4400, 0)


def test_an_error_or_the_end_of_the_stream_raises(pair) -> None:
    stream, server = pair
    server.sock.sendall(error("terminating connection"))
    with pytest.raises(HarnessError, match="terminating connection"):
        stream.read(timeout=5)
    server.sock.close()
    with pytest.raises(ConnectionError):
        stream.read(timeout=5)
