"""The pgoutput (v1) decoder of the test harness, on hand-built protocol messages."""

from __future__ import annotations

import datetime as dt
import struct
from typing import List, Optional, Sequence, Tuple, Union

import pytest

from harness.pgoutput import (
    UNCHANGED_TOAST,
    Begin,
    Column,
    Commit,
    DecodeError,
    Decoder,
    Delete,
    Insert,
    LogicalMessage,
    Origin,
    Relation,
    Truncate,
    TypeInfo,
    Update,
    cast_value,
    lsn_to_int,
    lsn_to_str,
    parse_message,
)

EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
COMMIT_TIME = dt.datetime(2025, 6, 2, 9, 14, 3, 530112, tzinfo=dt.timezone.utc)
RELID = 16394
VARCHAR, INT4, INT8, TIMESTAMP = 1043, 23, 20, 1114

Value = Union[None, bytes, str, object]


# -- message builders (the wire format of the PostgreSQL docs, "Logical Replication Message Formats")


def _string(text: str) -> bytes:
    return text.encode("utf-8") + b"\x00"


def _micros(moment: dt.datetime) -> int:
    return (moment - EPOCH) // dt.timedelta(microseconds=1)


def begin(final_lsn: int, xid: int, moment: dt.datetime = COMMIT_TIME) -> bytes:
    return b"B" + struct.pack(">QqI", final_lsn, _micros(moment), xid)


def commit(commit_lsn: int, end_lsn: int, moment: dt.datetime = COMMIT_TIME) -> bytes:
    return b"C" + struct.pack(">bQQq", 0, commit_lsn, end_lsn, _micros(moment))


def relation(
    columns: Sequence[Tuple[str, int, bool]],
    relid: int = RELID,
    identity: bytes = b"f",
    name: str = "act_ru_ext_task",
) -> bytes:
    out = b"R" + struct.pack(">I", relid) + _string("public") + _string(name) + identity
    out += struct.pack(">h", len(columns))
    for column, type_oid, key in columns:
        out += struct.pack(">b", 1 if key else 0) + _string(column) + struct.pack(">Ii", type_oid, -1)
    return out


def tuple_data(values: Sequence[Value]) -> bytes:
    out = struct.pack(">h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value is UNCHANGED_TOAST:
            out += b"u"
        else:
            raw = value.encode("utf-8") if isinstance(value, str) else value
            assert isinstance(raw, bytes)
            out += b"t" + struct.pack(">i", len(raw)) + raw
    return out


def insert(values: Sequence[Value], relid: int = RELID) -> bytes:
    return b"I" + struct.pack(">I", relid) + b"N" + tuple_data(values)


def update(new: Sequence[Value], old: Optional[Sequence[Value]] = None, kind: bytes = b"O") -> bytes:
    out = b"U" + struct.pack(">I", RELID)
    if old is not None:
        out += kind + tuple_data(old)
    return out + b"N" + tuple_data(new)


def delete(old: Sequence[Value], kind: bytes = b"O") -> bytes:
    return b"D" + struct.pack(">I", RELID) + kind + tuple_data(old)


TASK_COLUMNS = [
    ("id_", VARCHAR, True),
    ("rev_", INT4, True),
    ("worker_id_", VARCHAR, True),
    ("topic_name_", VARCHAR, True),
    ("lock_exp_time_", TIMESTAMP, True),
    ("priority_", INT8, True),
]
ROW_V1 = ["t-1", "1", None, "creditScoreChecker", None, "0"]
ROW_V2 = ["t-1", "2", "worker-7", "creditScoreChecker", "2025-06-02 09:19:03.54", "0"]


def feed_all(decoder: Decoder, messages: Sequence[bytes]) -> List[object]:
    out: List[object] = []
    for message in messages:
        out.extend(decoder.feed(message))
    return out


# -- parse_message --------------------------------------------------------------------


def test_parses_begin_and_commit() -> None:
    assert parse_message(begin(0x16B374D848, 731)) == Begin(
        final_lsn=0x16B374D848, commit_time=COMMIT_TIME, xid=731
    )
    assert parse_message(commit(100, 140)) == Commit(
        flags=0, commit_lsn=100, end_lsn=140, commit_time=COMMIT_TIME
    )


def test_parses_relation_columns_and_key_flags() -> None:
    message = parse_message(relation([("id_", VARCHAR, True), ("rev_", INT4, False)], identity=b"d"))

    assert message == Relation(
        relation_id=RELID,
        namespace="public",
        name="act_ru_ext_task",
        replica_identity="d",
        columns=(
            Column(name="id_", type_oid=VARCHAR, type_modifier=-1, is_key=True),
            Column(name="rev_", type_oid=INT4, type_modifier=-1, is_key=False),
        ),
    )


def test_parses_tuple_data_kinds() -> None:
    message = parse_message(insert(["abc", None, UNCHANGED_TOAST, ""]))

    assert message == Insert(relation_id=RELID, new=(b"abc", None, UNCHANGED_TOAST, b""))


def test_parses_update_with_and_without_old_tuple() -> None:
    full = parse_message(update(["a", "2"], ["a", "1"], kind=b"O"))
    key = parse_message(update(["b", "2"], ["a", None], kind=b"K"))
    bare = parse_message(update(["a", "2"]))

    assert full == Update(relation_id=RELID, old_kind="O", old=(b"a", b"1"), new=(b"a", b"2"))
    assert key == Update(relation_id=RELID, old_kind="K", old=(b"a", None), new=(b"b", b"2"))
    assert bare == Update(relation_id=RELID, old_kind=None, old=None, new=(b"a", b"2"))


def test_parses_delete() -> None:
    assert parse_message(delete(["a", None], kind=b"K")) == Delete(
        relation_id=RELID, old_kind="K", old=(b"a", None)
    )


def test_parses_the_tolerated_messages() -> None:
    truncate = b"T" + struct.pack(">ibII", 2, 1, 10, 11)
    type_info = b"Y" + struct.pack(">I", 90001) + _string("public") + _string("mood")
    origin = b"O" + struct.pack(">Q", 77) + _string("upstream")
    logical = b"M" + struct.pack(">bQ", 1, 88) + _string("sequin") + struct.pack(">i", 3) + b"abc"

    assert parse_message(truncate) == Truncate(options=1, relation_ids=(10, 11))
    assert parse_message(type_info) == TypeInfo(type_oid=90001, namespace="public", name="mood")
    assert parse_message(origin) == Origin(lsn=77, name="upstream")
    assert parse_message(logical) == LogicalMessage(flags=1, lsn=88, prefix="sequin", content=b"abc")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"Z",
        begin(1, 2)[:-1],
        begin(1, 2) + b"\x00",
        b"R" + struct.pack(">I", 1) + b"public",
        insert(["a"])[:-1],
        b"I" + struct.pack(">I", 1) + b"X",
        b"I" + struct.pack(">I", 1) + b"N" + struct.pack(">h", 1) + b"q",
        b"D" + struct.pack(">I", 1) + b"N" + tuple_data(["a"]),
    ],
    ids=[
        "empty",
        "unknown-type",
        "short-begin",
        "trailing",
        "unterminated",
        "short-tuple",
        "no-N",
        "bad-kind",
        "delete-N",
    ],
)
def test_rejects_malformed_messages(data: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_message(data)


# -- values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_oid", "text", "expected"),
    [
        (21, "-7", -7),
        (23, "42", 42),
        (20, "9007199254740993", 9007199254740993),
        (26, "16394", 16394),
        (700, "1.5", 1.5),
        (701, "-2.25e-05", -2.25e-05),
        (701, "NaN", "NaN"),
        (1700, "12345.678900", "12345.678900"),
        (790, "$1.00", "$1.00"),
        (16, "t", True),
        (16, "f", False),
        (25, "hello", "hello"),
        (1043, "", ""),
        (1042, "ab  ", "ab  "),
        (2950, "c1f0e6a4-4d0b-11f0-9a7e-0242ac120002", "c1f0e6a4-4d0b-11f0-9a7e-0242ac120002"),
        (114, '{"a": [1, 2]}', {"a": [1, 2]}),
        (3802, '{"b": null}', {"b": None}),
        (1082, "2025-06-02", "2025-06-02"),
        (1114, "2025-06-02 09:14:03.512", "2025-06-02T09:14:03.512000"),
        (1114, "2025-06-02 09:14:03", "2025-06-02T09:14:03.000000"),
        (1114, "2025-06-02 09:14:03.123456", "2025-06-02T09:14:03.123456"),
        (1114, "infinity", "infinity"),
        (1184, "2025-06-02 09:14:03.5+00", "2025-06-02T09:14:03.500000Z"),
        (1184, "2025-06-02 11:14:03.5+02", "2025-06-02T09:14:03.500000Z"),
        (1184, "2025-06-02 03:44:03-05:30", "2025-06-02T09:14:03.000000Z"),
        (1186, "1 year 2 mons -3 days 04:05:06.5", {"months": 14, "days": -3, "microseconds": 14706500000}),
        (1186, "00:00:01", {"months": 0, "days": 0, "microseconds": 1000000}),
        (1007, "{1,NULL,3}", [1, None, 3]),
        (1009, '{a,"b c","x\\"y"}', ["a", "b c", 'x"y']),
        (23, "not-a-number", "not-a-number"),
        (99999, "custom", "custom"),
    ],
)
def test_casts_values_by_type_oid(type_oid: int, text: str, expected: object) -> None:
    assert cast_value(type_oid, text.encode("utf-8")) == expected


def test_casts_null_and_unchanged_toast() -> None:
    assert cast_value(23, None) is None
    assert cast_value(25, UNCHANGED_TOAST) == "unchanged_toast"


def test_lsn_conversions() -> None:
    assert lsn_to_int("16/B374D848") == 0x16B374D848
    assert lsn_to_str(0x16B374D848) == "16/B374D848"
    assert lsn_to_int("0/1A2B3C4") == 27440068


# -- Decoder ----------------------------------------------------------------------------


def test_insert_update_delete_of_one_transaction_come_out_at_commit() -> None:
    decoder = Decoder(primary_key=lambda rel: ["id_"])
    assert feed_all(decoder, [begin(500, 9), relation(TASK_COLUMNS), insert(ROW_V1)]) == []

    changes = feed_all(decoder, [update(ROW_V2, ROW_V1), delete(ROW_V2), commit(500, 540)])

    assert [c.action for c in changes] == ["insert", "update", "delete"]
    assert [c.commit_idx for c in changes] == [0, 1, 2]
    assert {c.commit_lsn for c in changes} == {500}
    assert {c.commit_time for c in changes} == {COMMIT_TIME}
    assert {c.xid for c in changes} == {9}
    ins, upd, dele = changes
    assert ins.record == {
        "id_": "t-1",
        "rev_": 1,
        "worker_id_": None,
        "topic_name_": "creditScoreChecker",
        "lock_exp_time_": None,
        "priority_": 0,
    }
    assert ins.changes is None
    assert upd.record["rev_"] == 2
    assert upd.record["lock_exp_time_"] == "2025-06-02T09:19:03.540000"
    assert upd.changes == {"rev_": 1, "worker_id_": None, "lock_exp_time_": None}
    assert dele.record == upd.record
    assert dele.changes is None
    assert ins.primary_key == ("id_",)
    assert ins.record_pks == ["t-1"]


def test_update_without_full_old_row_has_empty_changes() -> None:
    decoder = Decoder()
    changes = feed_all(decoder, [begin(1, 1), relation(TASK_COLUMNS), update(ROW_V2), commit(1, 2)])

    assert changes[0].changes == {}


def test_delete_with_key_identity_carries_only_the_key() -> None:
    columns = [("id_", VARCHAR, True), ("rev_", INT4, False)]
    decoder = Decoder()
    changes = feed_all(
        decoder,
        [begin(1, 1), relation(columns, identity=b"d"), delete(["t-9", None], kind=b"K"), commit(1, 2)],
    )

    assert changes[0].record == {"id_": "t-9", "rev_": None}
    assert changes[0].record_pks == ["t-9"]


def test_without_a_primary_key_lookup_the_replica_identity_is_the_key() -> None:
    columns = [("a", INT4, True), ("b", INT4, True), ("c", INT4, False)]
    decoder = Decoder(primary_key=lambda rel: None)
    changes = feed_all(
        decoder, [begin(1, 1), relation(columns, identity=b"d"), insert(["1", "2", "3"]), commit(1, 2)]
    )

    assert changes[0].primary_key == ("a", "b")
    assert changes[0].record_pks == ["1", "2"]


def test_the_primary_key_is_looked_up_once_per_relation_message() -> None:
    calls = []

    def lookup(rel: Relation) -> List[str]:
        calls.append(rel.relation_id)
        return ["id_"]

    decoder = Decoder(primary_key=lookup)
    feed_all(decoder, [begin(1, 1), relation(TASK_COLUMNS), insert(ROW_V1), insert(ROW_V1), commit(1, 2)])
    feed_all(decoder, [begin(3, 2), insert(ROW_V1), commit(3, 4)])
    feed_all(decoder, [begin(5, 3), relation(TASK_COLUMNS), insert(ROW_V1), commit(5, 6)])

    assert calls == [RELID, RELID]


def test_unchanged_toast_is_taken_from_the_old_row_when_there_is_one() -> None:
    columns = [("id_", VARCHAR, True), ("error_msg_", 25, True)]
    decoder = Decoder()
    changes = feed_all(
        decoder,
        [
            begin(1, 1),
            relation(columns),
            update(["t-1", UNCHANGED_TOAST], ["t-1", "long text"]),
            update(["t-1", UNCHANGED_TOAST]),
            commit(1, 2),
        ],
    )

    assert changes[0].record["error_msg_"] == "long text"
    assert changes[0].changes == {}
    assert changes[1].record["error_msg_"] == "unchanged_toast"


def test_tolerated_messages_produce_no_changes() -> None:
    decoder = Decoder()
    messages = [
        begin(1, 1),
        b"O" + struct.pack(">Q", 77) + _string("upstream"),
        b"Y" + struct.pack(">I", 90001) + _string("public") + _string("mood"),
        b"T" + struct.pack(">ibI", 1, 0, RELID),
        b"M" + struct.pack(">bQ", 0, 88) + _string("p") + struct.pack(">i", 0),
        commit(1, 2),
    ]

    assert feed_all(decoder, messages) == []


def test_transactions_are_numbered_separately() -> None:
    decoder = Decoder()
    first = feed_all(decoder, [begin(10, 1), relation(TASK_COLUMNS), insert(ROW_V1), commit(10, 20)])
    second = feed_all(decoder, [begin(30, 2), insert(ROW_V1), insert(ROW_V1), commit(30, 40)])

    assert [(c.commit_lsn, c.commit_idx) for c in first + second] == [(10, 0), (30, 0), (30, 1)]


def test_the_decoder_knows_whether_a_transaction_is_open_and_where_the_last_one_ended() -> None:
    decoder = Decoder()
    assert (decoder.in_transaction, decoder.committed_through) == (False, 0)

    feed_all(decoder, [begin(10, 1), relation(TASK_COLUMNS), insert(ROW_V1)])
    assert (decoder.in_transaction, decoder.committed_through) == (True, 0)

    feed_all(decoder, [commit(10, 20)])
    assert (decoder.in_transaction, decoder.committed_through) == (False, 20)


def test_a_change_to_an_unknown_relation_is_an_error() -> None:
    decoder = Decoder()
    decoder.feed(begin(1, 1))

    with pytest.raises(DecodeError, match="before its Relation"):
        decoder.feed(insert(ROW_V1))


def test_a_tuple_of_the_wrong_width_is_an_error() -> None:
    decoder = Decoder()
    feed_all(decoder, [begin(1, 1), relation(TASK_COLUMNS)])

    with pytest.raises(DecodeError, match="6 columns, tuple has 2"):
        decoder.feed(insert(["a", "1"]))
