"""A client of Sequin's HTTP pull consumer API: receive, ack, nack.

Sequin streams changes of ``act_ru_ext_task`` from PostgreSQL's WAL. Messages
are delivered at least once; one row has at most one unacked message; a
message not acked within the consumer's visibility timeout (30 s by default)
is delivered again with the same ack id; ``nack`` makes it available at once.

Error answers (``{"summary": ...}``) become :class:`SequinError`, transport
faults :class:`~camunda_ext.errors.CamundaConnectionError`, answers that do not
parse :class:`~camunda_ext.errors.DecodeError`.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import attrs
import requests

from camunda_ext._http import Endpoint, Timeout, build_session, check_header_values, redact_url
from camunda_ext.errors import CamundaError, ConfigurationError, DecodeError

logger = logging.getLogger(__name__)

__all__ = ["TOKEN_ENVIRONMENT_VARIABLE", "BearerAuth", "SequinClient", "SequinError", "SequinMessage"]

#: Where the token is read from when none is passed.
TOKEN_ENVIRONMENT_VARIABLE = "SEQUIN_API_TOKEN"

#: Added to ``wait_for`` to make the read timeout of a receive, in seconds.
_WAIT_MARGIN = 5.0
#: Sequin's bounds of ``wait_for`` in milliseconds.
_WAIT_FOR_RANGE = (500, 300_000)
#: The most messages Sequin gives in one receive.
MAX_BATCH_SIZE = 1000
#: Sequin's bounds of ``max_batch_size``.
_BATCH_RANGE = (1, MAX_BATCH_SIZE)


class SequinError(CamundaError):
    """An error answer of Sequin.

    Attributes:
        status_code: The HTTP status.
        summary: Sequin's ``summary`` text (or the body's gist).
    """

    def __init__(self, status_code: int, summary: str) -> None:
        super().__init__(status_code, summary)
        self.status_code = status_code
        self.summary = summary

    def __str__(self) -> str:
        return "Sequin HTTP %d: %s" % (self.status_code, self.summary)


class BearerAuth(requests.auth.AuthBase):
    """``Authorization: Bearer <token>``; the token never shows in reprs."""

    def __init__(self, token: str) -> None:
        check_header_values({"Authorization": "Bearer " + token})
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = "Bearer " + self._token
        return request

    def __repr__(self) -> str:
        return "BearerAuth(<hidden>)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BearerAuth) and other._token == self._token

    def __hash__(self) -> int:
        return hash(self._token)


@attrs.frozen
class SequinMessage:
    """One delivered change.

    Attributes:
        ack_id: The id to ack or nack it with (the same on every delivery).
        action: ``insert``, ``update``, ``delete`` or ``read`` (backfill).
        record: The row's columns (for a delete, the old row).
        changes: For an update, the old values of the columns that changed.
        metadata: Table, commit position and consumer details.
        malformed: Why the message could not be read, for one that Sequin sent with
            an ack id but a body not of the API's shape (it has no action or record).
    """

    ack_id: str
    action: str
    record: Mapping[str, Any]
    changes: Optional[Mapping[str, Any]]
    metadata: Mapping[str, Any] = attrs.field(repr=False)
    malformed: Optional[str] = None

    @property
    def table(self) -> Tuple[Optional[str], Optional[str]]:
        """``(schema, table)`` of the change; None for a name that is missing or not text."""
        schema, table = self.metadata.get("table_schema"), self.metadata.get("table_name")
        return (
            schema if isinstance(schema, str) else None,
            table if isinstance(table, str) else None,
        )

    @property
    def idempotency_key(self) -> Optional[str]:
        """Sequin's key of this change, for de-duplication."""
        key = self.metadata.get("idempotency_key")
        return key if isinstance(key, str) else None


def parse_message(item: Any) -> SequinMessage:
    """Build a message from one item of a receive answer.

    Raises:
        DecodeError: The item is not ``{"ack_id", "data": {action, record, ...}}``.
    """
    if not isinstance(item, dict) or not isinstance(item.get("ack_id"), str):
        raise DecodeError("a Sequin message needs an ack_id: %r" % (item,))
    data = item.get("data")
    if not isinstance(data, dict):
        raise DecodeError("Sequin message %s has no data object" % item["ack_id"])
    action, record = data.get("action"), data.get("record")
    changes, metadata = data.get("changes"), data.get("metadata") or {}
    if not isinstance(action, str) or not isinstance(record, dict):
        raise DecodeError("Sequin message %s lacks action or record" % item["ack_id"])
    if changes is not None and not isinstance(changes, dict):
        raise DecodeError("Sequin message %s has changes that are not an object" % item["ack_id"])
    if not isinstance(metadata, dict):
        raise DecodeError("Sequin message %s has metadata that is not an object" % item["ack_id"])
    return SequinMessage(item["ack_id"], action, record, changes, metadata)


class SequinClient:
    """Receives, acks and nacks the messages of one Sequin pull consumer.

    Thread-safe.

    Args:
        base_url: Sequin's root, e.g. ``http://localhost:7376``.
        consumer: The consumer (sink) name or id.
        token: The API token; ``SEQUIN_API_TOKEN`` from the environment when None.
            There is no built-in token.
        session: A session to share (e.g. the engine client's); one of its own when None.
        timeout: Timeout in seconds, or a ``(connect, read)`` pair.
        verify: TLS verification: True (default), False or a CA bundle path.
        trust_env: Take proxies and CA bundle from the environment (read once).

    Raises:
        ConfigurationError: No token, or a URL that is not http(s).
    """

    def __init__(
        self,
        base_url: str,
        consumer: str,
        *,
        token: Optional[str] = None,
        session: Optional[requests.Session] = None,
        timeout: Timeout = (5.0, 30.0),
        verify: Union[bool, str] = True,
        trust_env: bool = True,
    ) -> None:
        token = token or os.environ.get(TOKEN_ENVIRONMENT_VARIABLE)
        if not token:
            raise ConfigurationError(
                "no Sequin API token: pass token= or set %s" % TOKEN_ENVIRONMENT_VARIABLE
            )
        if not consumer:
            raise ConfigurationError("consumer must name the Sequin pull consumer")
        self.consumer = consumer
        self._own_session = session is None
        self.session = session or build_session(pool_maxsize=4, pool_connections=1, connect_retries=3)
        self._endpoint = Endpoint(
            self.session,
            base_url,
            auth=BearerAuth(token),
            timeout=timeout,
            verify=verify,
            trust_env=trust_env,
        )
        self._prefix = "/api/http_pull_consumers/%s" % consumer

    def __repr__(self) -> str:
        return "SequinClient(%r, %r)" % (redact_url(self._endpoint.base_url), self.consumer)

    def close(self) -> None:
        """Close the session if this client made it."""
        if self._own_session:
            self.session.close()

    def receive(self, *, max_batch_size: int = 1, wait_for: Optional[float] = None) -> List[SequinMessage]:
        """Take up to ``max_batch_size`` messages, waiting up to ``wait_for`` seconds for one.

        Sequin may answer early with no messages while others are in flight.

        Args:
            max_batch_size: 1 to 1000.
            wait_for: Long-poll seconds (0.5 to 300), or None to answer at once.

        Raises:
            SequinError: An error answer.
            DecodeError: An answer that does not parse; nothing is lost, the
                messages come back after the visibility timeout.
        """
        body: Dict[str, Any] = {"max_batch_size": _clamp(max_batch_size, *_BATCH_RANGE)}
        read_timeout = None
        if wait_for is not None:
            body["wait_for"] = _clamp(int(wait_for * 1000), *_WAIT_FOR_RANGE)
            read_timeout = self._endpoint.timeout[1] + body["wait_for"] / 1000.0 + _WAIT_MARGIN
        data = self._call("/receive", body, read_timeout=read_timeout)
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise DecodeError('a Sequin receive answer must be {"data": [...]}, got %r' % (data,))
        return [message for message in map(_read_item, items) if message is not None]

    def ack(self, ack_ids: Sequence[str]) -> None:
        """Acknowledge (delete) messages; unknown ids are ignored by Sequin."""
        if ack_ids:
            self._call("/ack", {"ack_ids": list(ack_ids)})

    def nack(self, ack_ids: Sequence[str]) -> None:
        """Release messages for immediate redelivery."""
        if ack_ids:
            self._call("/nack", {"ack_ids": list(ack_ids)})

    def _call(self, path: str, body: Dict[str, Any], *, read_timeout: Optional[float] = None) -> Any:
        response = self._endpoint.request("POST", self._prefix + path, body=body, read_timeout=read_timeout)
        if response.status_code >= 300:
            raise SequinError(response.status_code, _summary(response))
        try:
            return json.loads(response.content)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            raise DecodeError("Sequin answered %s with a body that is not JSON" % path) from None


def _read_item(item: Any) -> Optional[SequinMessage]:
    """One item of a receive answer; a malformed one is flagged, not fatal to its batch.

    Without an ack id it cannot even be acked: it is logged and left to Sequin.
    """
    try:
        return parse_message(item)
    except DecodeError as error:
        ack_id = item.get("ack_id") if isinstance(item, dict) else None
        if not isinstance(ack_id, str):
            logger.error("Ignoring a Sequin message without an ack_id: %s", error)
            return None
        return SequinMessage(ack_id, "", {}, None, {}, malformed=str(error))


def _summary(response: requests.Response) -> str:
    try:
        data = json.loads(response.content)
    except (ValueError, RecursionError):
        return response.text[:200].strip() or response.reason or ""
    if isinstance(data, dict) and isinstance(data.get("summary"), str):
        return str(data["summary"])
    return json.dumps(data)[:200]


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, int(value)))
