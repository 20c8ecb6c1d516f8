"""A decoder of PostgreSQL's ``pgoutput`` logical replication protocol, version 1.

Two layers:

- :func:`parse_message` turns the bytes of one message (a row of
  ``pg_logical_slot_get_binary_changes``, or the payload of a replication ``XLogData``)
  into a message object: :class:`Begin`, :class:`Commit`, :class:`Relation`,
  :class:`Insert`, :class:`Update`, :class:`Delete`, :class:`Truncate`,
  :class:`TypeInfo`, :class:`Origin` or :class:`LogicalMessage`. Tuple values stay raw:
  ``None`` (SQL NULL), :data:`UNCHANGED_TOAST`, or the text bytes.
- :class:`Decoder` keeps the relations seen so far, collects the row changes of a
  transaction and hands them out at its commit as :class:`Change` objects, with
  column values cast by type OID the way Sequin renders them (:func:`cast_value`),
  the commit LSN and timestamp, and each change's 0-based index in the transaction.

Values are text (``t``) as pgoutput v1 sends them; they are formatted by the session
that decodes, so that session should use ``DateStyle=ISO``, ``TimeZone=UTC`` and
``IntervalStyle=postgres`` (the server's defaults in the test clusters).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import re
import struct
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

__all__ = [
    "UNCHANGED_TOAST",
    "Begin",
    "Change",
    "Column",
    "Commit",
    "DecodeError",
    "Decoder",
    "Delete",
    "Insert",
    "LogicalMessage",
    "Origin",
    "Relation",
    "Truncate",
    "TypeInfo",
    "Update",
    "cast_value",
    "lsn_to_int",
    "lsn_to_str",
    "parse_message",
]

POSTGRES_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
"""Timestamps in the protocol count microseconds from this instant."""


class _UnchangedToast:
    """The marker of a TOASTed value that the update did not change and the WAL does not hold."""

    _instance: Optional[_UnchangedToast] = None

    def __new__(cls) -> _UnchangedToast:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED_TOAST"


UNCHANGED_TOAST = _UnchangedToast()
"""Tuple value of kind ``u``; rendered as the string ``"unchanged_toast"`` when not recoverable."""

RawValue = Union[None, bytes, _UnchangedToast]
TupleData = Tuple[RawValue, ...]


class DecodeError(ValueError):
    """A message is truncated, malformed, or refers to a relation never described."""


# -- messages -----------------------------------------------------------------------


class _Record:
    """Small value objects: keyword construction, equality and repr over ``__slots__``."""

    __slots__: Tuple[str, ...] = ()

    def __init__(self, **values: Any) -> None:
        for name in self.__slots__:
            object.__setattr__(self, name, values.pop(name))
        if values:
            raise TypeError("unexpected fields %s" % sorted(values))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("%s is immutable" % type(self).__name__)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and all(
            getattr(self, n) == getattr(other, n) for n in self.__slots__
        )

    def __hash__(self) -> int:
        return hash((type(self), *(repr(getattr(self, n)) for n in self.__slots__)))

    def __repr__(self) -> str:
        return "%s(%s)" % (
            type(self).__name__,
            ", ".join("%s=%r" % (n, getattr(self, n)) for n in self.__slots__),
        )


class Begin(_Record):
    """``B``: a transaction starts. ``final_lsn`` is the LSN of its commit record."""

    __slots__ = ("commit_time", "final_lsn", "xid")
    final_lsn: int
    commit_time: dt.datetime
    xid: int


class Commit(_Record):
    """``C``: the transaction committed at ``commit_lsn``; ``end_lsn`` follows its commit record."""

    __slots__ = ("commit_lsn", "commit_time", "end_lsn", "flags")
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_time: dt.datetime


class Origin(_Record):
    """``O``: the transaction was replicated from another origin."""

    __slots__ = ("lsn", "name")
    lsn: int
    name: str


class Column(_Record):
    """One column of a :class:`Relation`. ``is_key``: part of the replica identity."""

    __slots__ = ("is_key", "name", "type_modifier", "type_oid")
    name: str
    type_oid: int
    type_modifier: int
    is_key: bool


class Relation(_Record):
    """``R``: describes a table before its first change in the stream (and after DDL).

    ``replica_identity`` is ``d`` (default), ``n`` (nothing), ``f`` (full) or ``i`` (index).
    Under ``f`` every column is flagged as key, so the primary key must come from the catalog.
    """

    __slots__ = ("columns", "name", "namespace", "relation_id", "replica_identity")
    relation_id: int
    namespace: str
    name: str
    replica_identity: str
    columns: Tuple[Column, ...]


class TypeInfo(_Record):
    """``Y``: describes a non-builtin data type."""

    __slots__ = ("name", "namespace", "type_oid")
    type_oid: int
    namespace: str
    name: str


class Insert(_Record):
    """``I``: a new row."""

    __slots__ = ("new", "relation_id")
    relation_id: int
    new: TupleData


class Update(_Record):
    """``U``: a changed row. ``old_kind``: ``O`` (whole old row, REPLICA IDENTITY FULL),
    ``K`` (old key only, when the key changed) or None (no old tuple)."""

    __slots__ = ("new", "old", "old_kind", "relation_id")
    relation_id: int
    old_kind: Optional[str]
    old: Optional[TupleData]
    new: TupleData


class Delete(_Record):
    """``D``: a removed row; ``old_kind`` ``O`` (whole row) or ``K`` (key columns, others null)."""

    __slots__ = ("old", "old_kind", "relation_id")
    relation_id: int
    old_kind: str
    old: TupleData


class Truncate(_Record):
    """``T``: tables truncated. ``options`` bit 1: CASCADE, bit 2: RESTART IDENTITY."""

    __slots__ = ("options", "relation_ids")
    options: int
    relation_ids: Tuple[int, ...]


class LogicalMessage(_Record):
    """``M``: a ``pg_logical_emit_message`` payload. ``flags`` bit 1: transactional."""

    __slots__ = ("content", "flags", "lsn", "prefix")
    flags: int
    lsn: int
    prefix: str
    content: bytes


Message = Union[Begin, Commit, Origin, Relation, TypeInfo, Insert, Update, Delete, Truncate, LogicalMessage]


# -- parsing ------------------------------------------------------------------------


_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")


def _truncated(position: int, wanted: int) -> DecodeError:
    return DecodeError("message truncated at byte %d (wanted %d more)" % (position, wanted))


class _Reader:
    """Sequential big-endian reads over one message; every overrun is a :class:`DecodeError`."""

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._pos = 0

    def _take(self, size: int) -> bytes:
        end = self._pos + size
        if size < 0 or end > len(self._data):
            raise _truncated(self._pos, size)
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def byte(self) -> str:
        return self._take(1).decode("latin-1")

    def int8(self) -> int:
        return int(struct.unpack(">b", self._take(1))[0])

    def int16(self) -> int:
        return int(struct.unpack(">h", self._take(2))[0])

    def int32(self) -> int:
        return int(struct.unpack(">i", self._take(4))[0])

    def uint32(self) -> int:
        return int(struct.unpack(">I", self._take(4))[0])

    def int64(self) -> int:
        return int(struct.unpack(">q", self._take(8))[0])

    def uint64(self) -> int:
        return int(struct.unpack(">Q", self._take(8))[0])

    def timestamp(self) -> dt.datetime:
        return POSTGRES_EPOCH + dt.timedelta(microseconds=self.int64())

    def string(self) -> str:
        end = self._data.find(b"\x00", self._pos)
        if end < 0:
            raise DecodeError("unterminated string at byte %d" % self._pos)
        text = self._data[self._pos : end].decode("utf-8")
        self._pos = end + 1
        return text

    def rest(self) -> bytes:
        return self._take(len(self._data) - self._pos)

    def tuple_data(self) -> TupleData:
        # The hot path of decoding (a value per column per row): one loop over local
        # offsets, not a method call per byte read.
        data, pos, size = self._data, self._pos, len(self._data)
        if pos + 2 > size:
            raise _truncated(pos, 2)
        (count,) = _INT16.unpack_from(data, pos)
        pos += 2
        values: List[RawValue] = []
        for _ in range(count):
            if pos >= size:
                raise _truncated(pos, 1)
            kind = data[pos]
            pos += 1
            if kind == 0x6E:  # n
                values.append(None)
            elif kind == 0x75:  # u
                values.append(UNCHANGED_TOAST)
            elif kind in (0x74, 0x62):  # t, or b (binary, from protocol v2 on; kept raw)
                if pos + 4 > size:
                    raise _truncated(pos, 4)
                (length,) = _INT32.unpack_from(data, pos)
                pos += 4
                if length < 0 or pos + length > size:
                    raise _truncated(pos, length)
                values.append(data[pos : pos + length])
                pos += length
            else:
                raise DecodeError("unknown tuple value kind %r" % chr(kind))
        self._pos = pos
        return tuple(values)

    def done(self) -> None:
        if self._pos != len(self._data):
            raise DecodeError("%d unexpected trailing bytes" % (len(self._data) - self._pos))


def parse_message(data: bytes) -> Message:
    """Parse one pgoutput (v1) message.

    Args:
        data: The message bytes, starting with its type byte.

    Returns:
        The message object.

    Raises:
        DecodeError: Unknown type, truncated or malformed message.
    """
    reader = _Reader(data)
    kind = reader.byte()
    message: Message
    if kind == "B":
        message = Begin(final_lsn=reader.uint64(), commit_time=reader.timestamp(), xid=reader.uint32())
    elif kind == "C":
        message = Commit(
            flags=reader.int8(),
            commit_lsn=reader.uint64(),
            end_lsn=reader.uint64(),
            commit_time=reader.timestamp(),
        )
    elif kind == "O":
        message = Origin(lsn=reader.uint64(), name=reader.string())
    elif kind == "R":
        relation_id, namespace, name, identity = (
            reader.uint32(),
            reader.string(),
            reader.string(),
            reader.byte(),
        )
        columns = []
        for _ in range(reader.int16()):
            flags = reader.int8()
            columns.append(
                Column(
                    name=reader.string(),
                    type_oid=reader.uint32(),
                    type_modifier=reader.int32(),
                    is_key=bool(flags & 1),
                )
            )
        message = Relation(
            relation_id=relation_id,
            namespace=namespace,
            name=name,
            replica_identity=identity,
            columns=tuple(columns),
        )
    elif kind == "Y":
        message = TypeInfo(type_oid=reader.uint32(), namespace=reader.string(), name=reader.string())
    elif kind == "I":
        relation_id = reader.uint32()
        if reader.byte() != "N":
            raise DecodeError("insert without a new tuple")
        message = Insert(relation_id=relation_id, new=reader.tuple_data())
    elif kind == "U":
        relation_id = reader.uint32()
        marker = reader.byte()
        old_kind, old = None, None
        if marker in ("K", "O"):
            old_kind, old = marker, reader.tuple_data()
            marker = reader.byte()
        if marker != "N":
            raise DecodeError("update without a new tuple")
        message = Update(relation_id=relation_id, old_kind=old_kind, old=old, new=reader.tuple_data())
    elif kind == "D":
        relation_id = reader.uint32()
        marker = reader.byte()
        if marker not in ("K", "O"):
            raise DecodeError("delete without an old tuple")
        message = Delete(relation_id=relation_id, old_kind=marker, old=reader.tuple_data())
    elif kind == "T":
        count, options = reader.int32(), reader.int8()
        message = Truncate(options=options, relation_ids=tuple(reader.uint32() for _ in range(count)))
    elif kind == "M":
        flags, lsn, prefix = reader.int8(), reader.uint64(), reader.string()
        message = LogicalMessage(flags=flags, lsn=lsn, prefix=prefix, content=reader._take(reader.int32()))
    else:
        raise DecodeError("unknown pgoutput message type %r" % kind)
    reader.done()
    return message


# -- values -------------------------------------------------------------------------

_INT_OIDS = frozenset({20, 21, 23, 26})  # int8, int2, int4, oid
_FLOAT_OIDS = frozenset({700, 701})  # float4, float8
_JSON_OIDS = frozenset({114, 3802})  # json, jsonb
_BOOL_OID = 16
_DATE_OID = 1082
_TIMESTAMP_OID = 1114
_TIMESTAMPTZ_OID = 1184
_INTERVAL_OID = 1186
# Array type OID -> element type OID, for the element types cast above.
_ARRAY_OIDS = {
    1000: 16,
    1005: 21,
    1007: 23,
    1016: 20,
    1021: 700,
    1022: 701,
    1009: 25,
    1015: 1043,
    1014: 1042,
    1231: 1700,
    2951: 2950,
    1182: 1082,
    1115: 1114,
    1185: 1184,
    199: 114,
    3807: 3802,
}

_TIMESTAMP = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?"
    r"(?:([+-])(\d\d)(?::?(\d\d))?(?::?(\d\d))?)?\Z"
)
_DATE = re.compile(r"\d{4}-\d\d-\d\d\Z")
_ISO = "%04d-%02d-%02dT%02d:%02d:%02d.%06d"
_INTERVAL_PART = re.compile(r"([+-]?\d+) (year|mon|day)s?")
_INTERVAL_TIME = re.compile(r"([+-])?(\d+):(\d\d):(\d\d)(?:\.(\d{1,6}))?\Z")


def _timestamp(text: str, *, with_zone: bool) -> str:
    match = _TIMESTAMP.match(text)
    if match is None:
        raise ValueError(text)
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    micros = int((match.group(7) or "0").ljust(6, "0"))
    sign, off_h, off_m, off_s = match.group(8, 9, 10, 11)
    value = dt.datetime(year, month, day, hour, minute, second, micros)  # checks the ranges
    if not with_zone:
        if sign:
            raise ValueError(text)
        return _ISO % (year, month, day, hour, minute, second, micros)
    if not sign:
        raise ValueError(text)
    offset = dt.timedelta(hours=int(off_h), minutes=int(off_m or 0), seconds=int(off_s or 0))
    if sign == "-":
        offset = -offset
    utc = value - offset
    return _ISO % (utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond) + "Z"


def _interval(text: str) -> Dict[str, int]:
    """Parse ``IntervalStyle=postgres`` output, e.g. ``1 year 2 mons -3 days 04:05:06.5``."""
    months = days = micros = 0
    rest = text
    for match in _INTERVAL_PART.finditer(text):
        count, unit = int(match.group(1)), match.group(2)
        if unit == "year":
            months += 12 * count
        elif unit == "mon":
            months += count
        else:
            days += count
        rest = rest.replace(match.group(0), "", 1)
    rest = rest.strip()
    if rest:
        clock = _INTERVAL_TIME.match(rest)
        if clock is None:
            raise ValueError(text)
        sign, hours, minutes, seconds, fraction = clock.groups()
        total = ((int(hours) * 60 + int(minutes)) * 60 + int(seconds)) * 1_000_000
        total += int((fraction or "0").ljust(6, "0"))
        micros = -total if sign == "-" else total
    return {"months": months, "days": days, "microseconds": micros}


def _split_array(text: str) -> List[Optional[str]]:
    """Split a one-dimensional array literal (``{a,"b c",NULL}``) into element texts."""
    if not (text.startswith("{") and text.endswith("}")):
        raise ValueError(text)
    body = text[1:-1]
    if not body:
        return []
    items: List[Optional[str]] = []
    pos = 0
    while True:
        if body.startswith('"', pos):
            chunk = []
            pos += 1
            while body[pos] != '"':
                if body[pos] == "\\":
                    pos += 1
                chunk.append(body[pos])
                pos += 1
            pos += 1
            items.append("".join(chunk))
        else:
            end = body.find(",", pos)
            end = len(body) if end < 0 else end
            raw = body[pos:end]
            if "{" in raw:
                raise ValueError(text)  # nested arrays come through as text
            items.append(None if raw == "NULL" else raw)
            pos = end
        if pos >= len(body):
            return items
        if body[pos] != ",":
            raise ValueError(text)
        pos += 1


def _float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(text)  # NaN and infinities have no JSON form
    return number


def _bool(text: str) -> bool:
    if text not in ("t", "f"):
        raise ValueError(text)
    return text == "t"


def _date(text: str) -> str:
    if not _DATE.match(text):
        raise ValueError(text)
    return text


def _array_of(element: Optional[Callable[[str], Any]]) -> Callable[[str], List[Any]]:
    """The cast of a one-dimensional array whose elements ``element`` casts (None: text)."""

    def cast(text: str) -> List[Any]:
        items = _split_array(text)
        if element is None:
            return items
        return [None if item is None else element(item) for item in items]

    return cast


# The cast of each type OID with a JSON form of its own. Every other type (numeric and
# money, which Sequin renders as strings like Decimals; text, varchar, char, uuid, name,
# unknown types) stays the text itself.
_CASTS: Dict[int, Callable[[str], Any]] = {
    **{oid: int for oid in _INT_OIDS},
    **{oid: _float for oid in _FLOAT_OIDS},
    **{oid: json.loads for oid in _JSON_OIDS},
    _BOOL_OID: _bool,
    _TIMESTAMP_OID: functools.partial(_timestamp, with_zone=False),
    _TIMESTAMPTZ_OID: functools.partial(_timestamp, with_zone=True),
    _DATE_OID: _date,
    _INTERVAL_OID: _interval,
}
_CASTS.update({oid: _array_of(_CASTS.get(element)) for oid, element in _ARRAY_OIDS.items()})


def cast_value(type_oid: int, raw: RawValue) -> Any:
    """Cast a pgoutput text value to the JSON value Sequin puts in ``record``.

    Args:
        type_oid: The column's type OID.
        raw: ``None`` (NULL), :data:`UNCHANGED_TOAST`, or the value's text bytes.

    Returns:
        int for int2/int4/int8/oid, float for float4/float8, bool, parsed JSON for
        json/jsonb, ``"YYYY-MM-DDTHH:MM:SS.ffffff"`` for timestamp (``Z`` appended and
        converted to UTC for timestamptz), ``"YYYY-MM-DD"`` for date,
        ``{"months","days","microseconds"}`` for interval, lists for one-dimensional
        arrays of those, and the text itself for everything else (numeric, text,
        varchar, char, uuid, ...) and whenever the cast fails. ``None`` for NULL,
        ``"unchanged_toast"`` for an unchanged TOASTed value.
    """
    if raw is None:
        return None
    if raw is UNCHANGED_TOAST:
        return "unchanged_toast"
    assert isinstance(raw, bytes)
    text = raw.decode("utf-8", "replace")
    cast = _CASTS.get(type_oid)
    if cast is None:
        return text
    try:
        return cast(text)
    except (ValueError, OverflowError, IndexError):
        return text


def lsn_to_int(text: str) -> int:
    """``"16/B374D848"`` -> ``(0x16 << 32) | 0xB374D848``."""
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def lsn_to_str(lsn: int) -> str:
    """The inverse of :func:`lsn_to_int`."""
    return "%X/%X" % (lsn >> 32, lsn & 0xFFFFFFFF)


# -- transactions -------------------------------------------------------------------


class Change(_Record):
    """One row change of a committed transaction, ready to render as a Sequin message.

    Attributes:
        action: ``"insert"``, ``"update"`` or ``"delete"``.
        relation: The table as last described by a :class:`Relation` message.
        primary_key: The primary-key column names in column order.
        record: The row after the change (the old row for a delete), cast values.
        changes: For updates, the old values of the columns whose value changed
            (``{}`` without a whole old row); None for inserts and deletes.
        commit_lsn: The LSN of the transaction's commit record, as an integer.
        commit_idx: 0-based position of the change inside its transaction.
        commit_time: The commit timestamp (aware, UTC).
        xid: The transaction id.
    """

    __slots__ = (
        "action",
        "changes",
        "commit_idx",
        "commit_lsn",
        "commit_time",
        "primary_key",
        "record",
        "relation",
        "xid",
    )
    action: str
    relation: Relation
    primary_key: Tuple[str, ...]
    record: Dict[str, Any]
    changes: Optional[Dict[str, Any]]
    commit_lsn: int
    commit_idx: int
    commit_time: dt.datetime
    xid: int

    @property
    def record_pks(self) -> List[str]:
        """The primary-key values as strings, in column order (Sequin's ``record_pks``)."""
        return [_pk_string(self.record.get(name)) for name in self.primary_key]


def _pk_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


PrimaryKeyLookup = Callable[[Relation], Optional[Sequence[str]]]
"""Returns a table's primary-key column names (None: unknown, use the replica identity)."""


class Decoder:
    """Turns a stream of pgoutput messages into committed :class:`Change` objects.

    Feed it every message of the slot in order with :meth:`feed`; the changes of a
    transaction come out, in order, from the call that feeds its commit. Truncates,
    types, origins and logical messages are accepted and produce nothing.

    Not thread-safe: one thread feeds it.

    Args:
        primary_key: Looks up a relation's primary key. Needed under REPLICA IDENTITY
            FULL, where pgoutput flags every column as key; without it (or when it
            returns None) the replica-identity columns are used.
    """

    def __init__(self, primary_key: Optional[PrimaryKeyLookup] = None) -> None:
        self._primary_key = primary_key
        self._relations: Dict[int, Relation] = {}
        self._keys: Dict[int, Tuple[str, ...]] = {}
        self._begin: Optional[Begin] = None
        # (action, relation, record, changes) of the open transaction.
        self._pending: List[Tuple[str, Relation, Dict[str, Any], Optional[Dict[str, Any]]]] = []
        self.committed_through = 0
        """The WAL position just past the last commit fed (0 before any)."""

    @property
    def relations(self) -> Dict[int, Relation]:
        """The relations described so far, by relation id."""
        return dict(self._relations)

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction has begun and not yet committed."""
        return self._begin is not None

    def feed(self, data: bytes) -> List[Change]:
        """Decode one message.

        Args:
            data: The message bytes.

        Returns:
            The transaction's changes when ``data`` is its commit, else an empty list.

        Raises:
            DecodeError: A malformed message, or a change to an unknown relation.
        """
        message = parse_message(data)
        if isinstance(message, Begin):
            self._begin, self._pending = message, []
        elif isinstance(message, Relation):
            self._relations[message.relation_id] = message
            self._keys.pop(message.relation_id, None)
        elif isinstance(message, Insert):
            relation = self._relation(message.relation_id)
            self._pending.append(("insert", relation, self._row(relation, message.new), None))
        elif isinstance(message, Update):
            relation = self._relation(message.relation_id)
            old = self._row(relation, message.old) if message.old is not None else None
            record = self._row(relation, message.new, fallback=old)
            changes: Dict[str, Any] = {}
            if old is not None and message.old_kind == "O":
                changes = {name: value for name, value in old.items() if record.get(name) != value}
            self._pending.append(("update", relation, record, changes))
        elif isinstance(message, Delete):
            relation = self._relation(message.relation_id)
            self._pending.append(("delete", relation, self._row(relation, message.old), None))
        elif isinstance(message, Commit):
            return self._commit(message)
        return []

    def _relation(self, relation_id: int) -> Relation:
        try:
            return self._relations[relation_id]
        except KeyError:
            raise DecodeError("change to relation %d before its Relation message" % relation_id) from None

    def _row(
        self, relation: Relation, values: TupleData, fallback: Optional[Dict[str, Any]] = None
    ) -> Dict[str, Any]:
        if len(values) != len(relation.columns):
            raise DecodeError(
                "relation %s.%s has %d columns, tuple has %d"
                % (relation.namespace, relation.name, len(relation.columns), len(values))
            )
        row = {}
        for column, raw in zip(relation.columns, values):
            if (
                raw is UNCHANGED_TOAST
                and fallback is not None
                and fallback.get(column.name) != "unchanged_toast"
            ):
                row[column.name] = fallback.get(column.name)  # recovered from the old row
            else:
                row[column.name] = cast_value(column.type_oid, raw)
        return row

    def _key_of(self, relation: Relation) -> Tuple[str, ...]:
        key = self._keys.get(relation.relation_id)
        if key is None:
            found = self._primary_key(relation) if self._primary_key else None
            key = tuple(found) if found else tuple(c.name for c in relation.columns if c.is_key)
            self._keys[relation.relation_id] = key
        return key

    def _commit(self, commit: Commit) -> List[Change]:
        xid = self._begin.xid if self._begin is not None else 0
        changes = [
            Change(
                action=action,
                relation=relation,
                primary_key=self._key_of(relation),
                record=record,
                changes=delta,
                commit_lsn=commit.commit_lsn,
                commit_idx=index,
                commit_time=commit.commit_time,
                xid=xid,
            )
            for index, (action, relation, record, delta) in enumerate(self._pending)
        ]
        self._begin, self._pending = None, []
        self.committed_through = max(self.committed_through, commit.end_lsn)
        return changes
