"""Tests of camunda_ext.variables: typing Python values for the engine and reading them back.

Encoding follows README.rst's typed variables; decoding is driven by the
payloads a Camunda 7.24.0 engine sent (tests/fixtures/engine).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from camunda_ext import variables
from camunda_ext.errors import DecodeError, VariableError
from camunda_ext.variables import (
    Boolean,
    Bytes,
    Date,
    Double,
    File,
    Integer,
    Json,
    Long,
    Null,
    Object,
    Short,
    String,
    TypedValue,
    Xml,
    decode_value,
    decode_variables,
    encode_value,
    encode_variables,
    format_date,
    parse_date,
    python_value,
    to_typed,
)

UTC = dt.timezone.utc
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
JSON_OBJECT_INFO = {"serializationDataFormat": "application/json"}


def _wire_round_trip(wire: Any) -> Any:
    """What the engine would see: the body goes through JSON text both ways."""
    return json.loads(json.dumps(wire, allow_nan=False))


# --------------------------------------------------------------------------- the typed-variable table


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (True, {"type": "Boolean", "value": True}),
        (False, {"type": "Boolean", "value": False}),
        (42, {"type": "Integer", "value": 42}),
        (3.25, {"type": "Double", "value": 3.25}),
        ("héllo ✓", {"type": "String", "value": "héllo ✓"}),
        ("", {"type": "String", "value": ""}),
        (None, {"type": "Null", "value": None}),
        (
            dt.datetime(2026, 12, 4, 10, 11, 12, 345000, tzinfo=UTC),
            {"type": "Date", "value": "2026-12-04T10:11:12.345+0000"},
        ),
        (
            [7, 3, 9],
            {
                "type": "Object",
                "value": "[7,3,9]",
                "valueInfo": {"objectTypeName": "java.util.ArrayList", **JSON_OBJECT_INFO},
            },
        ),
        (
            (1, "a"),
            {
                "type": "Object",
                "value": '[1,"a"]',
                "valueInfo": {"objectTypeName": "java.util.ArrayList", **JSON_OBJECT_INFO},
            },
        ),
        (
            {"limit": 1000, "currency": "EUR", "tags": ["x"]},
            {
                "type": "Object",
                "value": '{"limit":1000,"currency":"EUR","tags":["x"]}',
                "valueInfo": {"objectTypeName": "java.util.LinkedHashMap", **JSON_OBJECT_INFO},
            },
        ),
        (b"\x00\x01\x02binary\xff", {"type": "Bytes", "value": "AAECYmluYXJ5/w=="}),
        (bytearray(b"ab"), {"type": "Bytes", "value": "YWI="}),
    ],
    ids=lambda param: type(param).__name__ if not isinstance(param, dict) else None,
)
def test_plain_values_are_typed_as_the_design_table_says(value: Any, wire: Any) -> None:
    assert encode_value(value) == wire


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ({"type": "Boolean", "value": True, "valueInfo": {}}, True),
        ({"type": "Integer", "value": 42, "valueInfo": {}}, 42),
        ({"type": "Long", "value": 9007199254740993, "valueInfo": {}}, 9007199254740993),
        ({"type": "Short", "value": -7, "valueInfo": {}}, -7),
        ({"type": "Double", "value": 3.25, "valueInfo": {}}, 3.25),
        ({"type": "Double", "value": 3, "valueInfo": {}}, 3.0),
        ({"type": "String", "value": "héllo ✓", "valueInfo": {}}, "héllo ✓"),
        ({"type": "Null", "value": None, "valueInfo": {}}, None),
        (
            {"type": "Date", "value": "2026-12-04T10:11:12.345+0000", "valueInfo": {}},
            dt.datetime(2026, 12, 4, 10, 11, 12, 345000, tzinfo=UTC),
        ),
        (
            {
                "type": "Object",
                "value": "[7,3,9]",
                "valueInfo": {"objectTypeName": "java.util.ArrayList", **JSON_OBJECT_INFO},
            },
            [7, 3, 9],
        ),
        (
            {
                "type": "Object",
                "value": '{"a":{"b":[1]}}',
                "valueInfo": {"objectTypeName": "java.util.LinkedHashMap", **JSON_OBJECT_INFO},
            },
            {"a": {"b": [1]}},
        ),
        ({"type": "Bytes", "value": "AAECYmluYXJ5/w==", "valueInfo": {}}, b"\x00\x01\x02binary\xff"),
        ({"type": "Json", "value": '{"n":[1,2]}', "valueInfo": {}}, {"n": [1, 2]}),
        ({"type": "Xml", "value": "<a/>", "valueInfo": {}}, "<a/>"),
    ],
)
def test_wire_values_decode_to_python_values(wire: Any, expected: Any) -> None:
    decoded = decode_value(wire)

    assert decoded.type == wire["type"]
    assert not decoded.is_opaque
    assert python_value(decoded) == expected
    assert type(python_value(decoded)) is type(expected)


def test_a_date_decodes_to_an_aware_datetime_in_the_sent_offset() -> None:
    decoded = decode_value({"type": "Date", "value": "2026-12-04T15:41:12.345+0530"})

    assert decoded.value.utcoffset() == dt.timedelta(hours=5, minutes=30)
    assert decoded.value == dt.datetime(2026, 12, 4, 10, 11, 12, 345000, tzinfo=UTC)


def test_a_missing_value_info_decodes_like_an_empty_one() -> None:
    assert decode_value({"type": "Integer", "value": 1}) == TypedValue("Integer", 1, {})
    assert decode_value({"type": "Integer", "value": 1, "valueInfo": None}) == TypedValue("Integer", 1, {})


# --------------------------------------------------------------------------- integers


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (INT_MAX, "Integer"),
        (INT_MAX + 1, "Long"),
        (INT_MIN, "Integer"),
        (INT_MIN - 1, "Long"),
        (0, "Integer"),
        (LONG_MAX, "Long"),
        (LONG_MIN, "Long"),
    ],
)
def test_ints_are_integer_within_32_bits_and_long_beyond(value: int, kind: str) -> None:
    assert encode_value(value) == {"type": kind, "value": value}


@pytest.mark.parametrize("value", [LONG_MAX + 1, LONG_MIN - 1, 10**30])
def test_ints_beyond_64_bits_are_refused(value: int) -> None:
    with pytest.raises(VariableError, match="out of range for Long"):
        encode_value(value)
    with pytest.raises(VariableError):
        to_typed(value)


def test_a_bool_is_never_sent_as_a_number() -> None:
    assert encode_value(True)["type"] == "Boolean"
    with pytest.raises(VariableError):
        encode_value(True, type="Integer")


# --------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (dt.datetime(2026, 12, 4, 10, 11, 12, 345000, tzinfo=UTC), "2026-12-04T10:11:12.345+0000"),
        (
            dt.datetime(
                2026, 12, 4, 10, 11, 12, 345000, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))
            ),
            "2026-12-04T10:11:12.345+0530",
        ),
        (
            dt.datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=dt.timezone(dt.timedelta(hours=-8))),
            "2026-01-02T03:04:05.006-0800",
        ),
        (
            dt.datetime(2026, 12, 4, 10, 11, 12, 345999, tzinfo=UTC),
            "2026-12-04T10:11:12.345+0000",
        ),
        (dt.datetime(2026, 12, 4, 10, 11, 12, tzinfo=UTC), "2026-12-04T10:11:12.000+0000"),
        (dt.datetime(999, 1, 1, tzinfo=UTC), "0999-01-01T00:00:00.000+0000"),
    ],
    ids=["utc", "plus-0530", "minus-0800", "microseconds-truncated", "no-fraction", "short-year"],
)
def test_dates_use_the_engine_pattern_exactly(value: dt.datetime, text: str) -> None:
    assert format_date(value) == text
    assert encode_value(value) == {"type": "Date", "value": text}


def test_a_sub_minute_offset_is_sent_as_the_same_instant_in_utc() -> None:
    odd = dt.timezone(dt.timedelta(minutes=10, seconds=30))
    value = dt.datetime(2026, 12, 4, 10, 11, 12, 345000, tzinfo=odd)

    text = format_date(value)

    assert text == "2026-12-04T10:00:42.345+0000"
    assert parse_date(text) == value


def test_a_naive_datetime_is_refused_rather_than_guessed() -> None:
    naive = dt.datetime(2026, 12, 4, 10, 11, 12)

    with pytest.raises(VariableError, match="naive datetime"):
        encode_value(naive)
    with pytest.raises(VariableError):
        to_typed(naive)
    with pytest.raises(VariableError):
        encode_value(Date(naive))


@pytest.mark.parametrize(
    "text", ["2026-12-04", "2026-12-04T10:11:12+0000", "yesterday", "", "2026-13-04T10:11:12.345+0000"]
)
def test_text_that_is_no_engine_date_does_not_decode(text: str) -> None:
    with pytest.raises(DecodeError):
        parse_date(text)
    with pytest.raises(DecodeError):
        decode_value({"type": "Date", "value": text})


# --------------------------------------------------------------------------- explicit types


@pytest.mark.parametrize(
    ("value", "type_name", "wire_value"),
    [
        (5, "Long", 5),
        (5, "Short", 5),
        (2**15 - 1, "Short", 2**15 - 1),
        (-(2**15), "Short", -(2**15)),
        (5, "Integer", 5),
        (5, "Double", 5.0),
        (2.5, "Double", 2.5),
        ("x", "String", "x"),
        ("<a/>", "Xml", "<a/>"),
        (False, "Boolean", False),
        ({"a": [1]}, "Json", '{"a":[1]}'),
        ('{"a":1}', "Json", '{"a":1}'),
        (None, "Null", None),
        (b"ab", "Bytes", "YWI="),
        (dt.datetime(2026, 1, 1, tzinfo=UTC), "Date", "2026-01-01T00:00:00.000+0000"),
    ],
)
def test_an_explicit_type_overrides_inference(value: Any, type_name: str, wire_value: Any) -> None:
    assert encode_value(value, type=type_name) == {"type": type_name, "value": wire_value}
    assert to_typed(value, type_name).type == type_name


def test_an_explicit_double_sends_a_json_float() -> None:
    body = json.dumps(encode_value(5, type="Double"))

    assert '"value": 5.0' in body


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ("12", "Long"),
        (1.5, "Integer"),
        (2**15, "Short"),
        (-(2**15) - 1, "Short"),
        (2**31, "Integer"),
        (2**63, "Long"),
        (True, "Long"),
        ("1.5", "Double"),
        (True, "Double"),
        (1, "String"),
        (1, "Boolean"),
        ("2026-01-01", "Date"),
        ("text", "Bytes"),
        (1, "Null"),
        ({1, 2}, "Json"),
        (3, "Object"),
        (b"x", "File"),
    ],
)
def test_a_value_that_does_not_fit_its_explicit_type_is_refused(value: Any, type_name: str) -> None:
    with pytest.raises(VariableError):
        encode_value(value, type=type_name)
    with pytest.raises(VariableError):
        to_typed(value, type_name)


def test_explicit_object_type_takes_a_list_or_dict() -> None:
    assert encode_value([1], type="Object")["valueInfo"]["objectTypeName"] == "java.util.ArrayList"


def test_an_unknown_type_name_is_sent_as_given() -> None:
    assert encode_value("v", type="Custom") == {"type": "Custom", "value": "v"}


@pytest.mark.parametrize(
    ("typed", "wire"),
    [
        (String("s"), {"type": "String", "value": "s"}),
        (Boolean(True), {"type": "Boolean", "value": True}),
        (Short(7), {"type": "Short", "value": 7}),
        (Integer(7), {"type": "Integer", "value": 7}),
        (Long(7), {"type": "Long", "value": 7}),
        (Double(7), {"type": "Double", "value": 7.0}),
        (Null(), {"type": "Null", "value": None}),
        (Xml("<a/>"), {"type": "Xml", "value": "<a/>"}),
        (Json([1, {"b": None}]), {"type": "Json", "value": '[1,{"b":null}]'}),
        (Bytes(b"ab"), {"type": "Bytes", "value": "YWI="}),
        (
            Date(dt.datetime(2026, 12, 4, 10, 11, 12, 345000, tzinfo=UTC)),
            {"type": "Date", "value": "2026-12-04T10:11:12.345+0000"},
        ),
        (
            Object({"a": 1}, "com.example.Loan"),
            {
                "type": "Object",
                "value": '{"a":1}',
                "valueInfo": {"objectTypeName": "com.example.Loan", **JSON_OBJECT_INFO},
            },
        ),
        (
            Object("<loan/>", "com.example.Loan", "application/xml"),
            {
                "type": "Object",
                "value": "<loan/>",
                "valueInfo": {
                    "objectTypeName": "com.example.Loan",
                    "serializationDataFormat": "application/xml",
                },
            },
        ),
    ],
)
def test_typed_value_helpers_choose_the_type(typed: TypedValue, wire: Any) -> None:
    assert encode_value(typed) == wire
    assert encode_variables({"v": typed}) == {"v": wire}


def test_a_typed_value_with_a_conflicting_type_argument_is_refused() -> None:
    assert encode_value(Long(1), type="Long") == {"type": "Long", "value": 1}
    with pytest.raises(VariableError):
        encode_value(Long(1), type="String")


@pytest.mark.parametrize(
    "typed",
    [
        TypedValue("Long", "12"),
        TypedValue("Short", 2**15),
        TypedValue("Integer", 1.5),
        TypedValue("Double", math.inf),
        TypedValue("String", 3),
        TypedValue("long", "12"),
        TypedValue("Bytes", 5),
        TypedValue("Json", {1: "a"}),
    ],
)
def test_a_typed_value_that_does_not_fit_its_type_is_refused(typed: TypedValue) -> None:
    # Built directly, not with the helpers (which refuse such values at once): encoding checks too.
    with pytest.raises(VariableError):
        encode_value(typed)
    with pytest.raises(VariableError):
        to_typed(typed)


#: A value each helper refuses, and the start of the message naming its type.
MISFITS = [
    ("String", 3),
    ("String", None),
    ("Boolean", 1),
    ("Short", 2**15),
    ("Integer", 1.5),
    ("Long", "12"),
    ("Long", True),
    ("Double", "x"),
    ("Double", "1.5"),
    ("Double", None),
    ("Double", True),
    ("Double", 10**400),
    ("Double", -(10**400)),
    ("Double", math.nan),
    ("Date", "2026-01-01"),
    ("Date", dt.datetime(2026, 1, 1)),
    ("Bytes", 5),
    ("Bytes", "abc"),
    ("Bytes", None),
    ("Bytes", [1, 2]),
    ("Json", {1: "a"}),
    ("Json", {"a": object()}),
    ("Xml", 1),
]
HELPERS = {
    "String": String,
    "Boolean": Boolean,
    "Short": Short,
    "Integer": Integer,
    "Long": Long,
    "Double": Double,
    "Date": Date,
    "Bytes": Bytes,
    "Json": Json,
    "Xml": Xml,
}


@pytest.mark.parametrize(("type_name", "value"), MISFITS)
def test_a_helper_refuses_a_value_that_does_not_fit_with_a_variable_error(type_name: str, value: Any) -> None:
    with pytest.raises(VariableError) as refused:
        HELPERS[type_name](value)

    assert type(refused.value) is VariableError
    if not isinstance(value, dt.datetime):  # a naive datetime's message is format_date's
        assert type_name in str(refused.value), str(refused.value)


@pytest.mark.parametrize(
    ("type_name", "value"),
    # None with an explicit type is a typed null, which the helpers have no use for.
    [(type_name, value) for type_name, value in MISFITS if value is not None],
)
def test_the_helpers_and_an_explicit_type_refuse_alike(type_name: str, value: Any) -> None:
    with pytest.raises(VariableError) as by_helper:
        HELPERS[type_name](value)
    for spelling in (type_name, type_name.lower(), type_name.upper()):
        with pytest.raises(VariableError) as by_name:
            encode_value(value, type=spelling)
        assert str(by_name.value) == str(by_helper.value)
        with pytest.raises(VariableError):
            to_typed(value, spelling)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda: File(3, "a.txt"), "File needs bytes"),
        (lambda: File("hello", "a.txt"), "File needs bytes"),
        (lambda: File(None, "a.txt"), "File needs a value"),
        (lambda: Object({1: "a"}, "com.example.Loan"), "Object value has a dict key that is not a str"),
        (lambda: Object([{"a": {"b": [1]}}, math.inf], "java.util.ArrayList"), "Object value is not JSON"),
    ],
)
def test_file_and_object_refuse_what_they_cannot_send(make: Any, problem: str) -> None:
    with pytest.raises(VariableError, match="^" + problem):
        make()


def test_bytes_take_a_bytearray_or_memoryview_and_hold_bytes() -> None:
    for content in (b"ab", bytearray(b"ab"), memoryview(b"ab")):
        assert Bytes(content) == TypedValue("Bytes", b"ab")
        assert File(content, "a.bin").value == b"ab"
        assert encode_value(content, type="Bytes") == {"type": "Bytes", "value": "YWI="}


def test_a_double_holds_the_float_it_sends() -> None:
    assert Double(7) == TypedValue("Double", 7.0)
    assert type(Double(7).value) is float
    assert type(to_typed(7, "Double").value) is float


@pytest.mark.parametrize("value", [10**400, -(10**400), 2**1024])
def test_an_int_beyond_a_double_is_refused_as_double(value: int) -> None:
    with pytest.raises(VariableError, match="beyond the range of a double"):
        encode_value(value, type="Double")
    with pytest.raises(VariableError, match="beyond the range of a double"):
        encode_value(TypedValue("Double", value))


# --------------------------------------------------------------------------- type names


@pytest.mark.parametrize(
    ("value", "spelling", "canonical", "wire_value"),
    [
        (5, "long", "Long", 5),
        (5, "LONG", "Long", 5),
        (5, "short", "Short", 5),
        (5, "double", "Double", 5.0),
        ("x", "string", "String", "x"),
        (True, "boolean", "Boolean", True),
        (b"ab", "bytes", "Bytes", "YWI="),
        ({"a": 1}, "json", "Json", '{"a":1}'),
        ("<a/>", "xml", "Xml", "<a/>"),
        (None, "null", "Null", None),
        (dt.datetime(2026, 1, 1, tzinfo=UTC), "date", "Date", "2026-01-01T00:00:00.000+0000"),
    ],
)
def test_a_type_name_in_any_case_is_sent_canonically(
    value: Any, spelling: str, canonical: str, wire_value: Any
) -> None:
    assert encode_value(value, type=spelling) == {"type": canonical, "value": wire_value}
    assert to_typed(value, spelling).type == canonical
    assert encode_value(TypedValue(spelling, value)) == {"type": canonical, "value": wire_value}


@pytest.mark.parametrize(
    ("value", "spelling"),
    [
        ("12", "long"),
        (2**63, "long"),
        (2**15, "short"),
        (True, "integer"),
        ("x", "double"),
        ("text", "bytes"),
    ],
)
def test_a_lower_case_type_name_is_checked(value: Any, spelling: str) -> None:
    with pytest.raises(VariableError):
        encode_value(value, type=spelling)
    with pytest.raises(VariableError):
        to_typed(value, spelling)


def test_a_naive_datetime_is_refused_whatever_the_case_of_date() -> None:
    with pytest.raises(VariableError, match="naive datetime"):
        encode_value(dt.datetime(2026, 1, 1), type="date")


def test_lower_case_object_and_file_names_get_their_rules() -> None:
    assert encode_value([1], type="object")["valueInfo"]["objectTypeName"] == "java.util.ArrayList"
    with pytest.raises(VariableError, match="needs a filename"):
        encode_value(b"x", type="file")


def test_a_typed_value_matches_a_type_name_in_any_case() -> None:
    assert encode_value(Long(1), type="long") == {"type": "Long", "value": 1}
    with pytest.raises(VariableError):
        encode_value(Long(1), type="string")


def test_a_type_name_must_be_a_str() -> None:
    with pytest.raises(VariableError, match="type name must be a str"):
        encode_value(1, type=5)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- JSON object keys


@pytest.mark.parametrize(
    "value",
    [
        {1: "a"},
        {1: "a", "1": "b"},
        {None: 1},
        {True: 1},
        {1.5: 1},
        {"outer": [{"inner": {2: "x"}}]},
        [{"a": 1}, ({3: 4},)],
    ],
    ids=["int", "int-and-its-str", "None", "bool", "float", "nested-dict", "in-a-tuple"],
)
def test_json_structures_with_non_str_keys_are_refused(value: Any) -> None:
    problem = "value has a dict key that is not a str"
    with pytest.raises(VariableError, match="^Object " + problem):
        encode_value(value)
    with pytest.raises(VariableError, match="^Object " + problem):
        encode_variables({"v": value})
    with pytest.raises(VariableError, match="^Json " + problem):
        encode_value(value, type="Json")
    with pytest.raises(VariableError, match="^Json " + problem):
        Json(value)


def test_a_structure_that_contains_itself_is_refused() -> None:
    loop: Any = {"a": []}
    loop["a"].append(loop)

    with pytest.raises(VariableError, match="not JSON-serializable"):
        encode_value(loop)


def test_a_structure_nested_deeper_than_the_stack_is_refused() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]

    with pytest.raises(VariableError, match="nested too deeply"):
        encode_value(deep)


# --------------------------------------------------------------------------- files


def test_a_file_carries_filename_mime_type_and_encoding() -> None:
    wire = encode_value(File(b"a;b\n1;2\n", "report.csv", mime_type="text/csv", encoding="UTF-8"))

    assert wire == {
        "type": "File",
        "value": base64.b64encode(b"a;b\n1;2\n").decode("ascii"),
        "valueInfo": {"filename": "report.csv", "mimeType": "text/csv", "encoding": "UTF-8"},
    }


def test_a_file_without_optional_metadata_sends_only_the_filename() -> None:
    assert encode_value(File(b"x", "x.bin"))["valueInfo"] == {"filename": "x.bin"}


def test_a_file_read_back_is_opaque_and_keeps_its_metadata(fixture: Any) -> None:
    wire = fixture("process_instance_variables")["aFile"]

    decoded = decode_value(wire)

    assert decoded.is_opaque
    assert python_value(decoded) is decoded
    assert decoded.value_info == {"encoding": "UTF-8", "filename": "report.csv", "mimeType": "text/csv"}
    assert encode_value(decoded) == {"type": "File", "value": None, "valueInfo": wire["valueInfo"]}


# --------------------------------------------------------------------------- refused values


@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, -math.inf],
    ids=["nan", "inf", "-inf"],
)
def test_non_finite_floats_are_refused(value: float) -> None:
    with pytest.raises(VariableError, match="NaN or infinity"):
        encode_value(value)
    with pytest.raises(VariableError):
        to_typed(value)
    with pytest.raises(VariableError):
        encode_value([value])


@pytest.mark.parametrize(
    "value",
    [{1, 2}, frozenset(), decimal.Decimal("1.5"), object(), dt.date(2026, 1, 1), 1j, [{1}], {"a": object()}],
    ids=["set", "frozenset", "Decimal", "object", "date", "complex", "list-of-set", "dict-of-object"],
)
def test_values_with_no_camunda_type_are_refused(value: Any) -> None:
    with pytest.raises(VariableError):
        encode_value(value)
    with pytest.raises(VariableError):
        to_typed(value)


@pytest.mark.parametrize("name", ["", None, 3])
def test_variable_names_must_be_non_empty_strings(name: Any) -> None:
    with pytest.raises(VariableError):
        encode_variables({name: 1})


def test_variable_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        encode_value(object())


def test_encode_variables_leaves_none_as_none() -> None:
    assert encode_variables(None) is None
    assert encode_variables({}) == {}


# --------------------------------------------------------------------------- real engine payloads


def _all_types_expected() -> dict:
    return {
        "aBoolean": True,
        "aString": "héllo ✓",
        "aList": [7, 3, 9],
        "aLong": 9007199254740993,
        "aDouble": 3.25,
        "anInteger": 42,
        "someBytes": b"\x00\x01\x02binary\xff",
        "aShort": 7,
        "aNull": None,
        "aMap": {"limit": 1000, "currency": "EUR", "approved": True},
        "aDate": dt.datetime(2025, 11, 3, 9, 15, 30, 123000, tzinfo=UTC),
    }


@pytest.mark.parametrize("name", ["fetch_and_lock_all_types", "fetch_and_lock_all_types_deserialized"])
def test_every_type_of_a_fetch_decodes(fixture: Any, name: str) -> None:
    decoded = decode_variables(fixture(name)[0]["variables"])
    values = {key: python_value(typed) for key, typed in decoded.items()}

    for key, expected in _all_types_expected().items():
        assert values[key] == expected, key
        assert type(values[key]) is type(expected), key
    assert values["aDate"].utcoffset() == dt.timedelta(0)
    assert isinstance(values["aFile"], TypedValue)
    assert values["aFile"].type == "File"
    assert {decoded[key].type for key in decoded} == {
        "Boolean",
        "String",
        "Object",
        "File",
        "Long",
        "Double",
        "Integer",
        "Bytes",
        "Json",
        "Short",
        "Null",
        "Date",
    }


def test_serialized_json_variables_decode_to_python_structures(fixture: Any) -> None:
    decoded = decode_variables(fixture("fetch_and_lock_all_types")[0]["variables"])

    assert decoded["someJson"].value == {"name": "Ann", "tags": ["a", "b"], "nested": {"n": 1}}


def test_deserialized_object_keeps_the_generic_type_name(fixture: Any) -> None:
    decoded = decode_variables(fixture("fetch_and_lock_all_types_deserialized")[0]["variables"])

    assert decoded["aList"].value_info["objectTypeName"] == "java.util.ArrayList<java.lang.Integer>"
    assert decoded["aList"].value == [7, 3, 9]


@pytest.mark.parametrize(
    "name",
    ["process_instance_variables", "fetch_and_lock_all_types", "execution_local_variables"],
)
def test_engine_variables_are_sent_back_as_the_engine_sent_them(fixture: Any, name: str) -> None:
    wire = fixture(name)
    if isinstance(wire, list):
        wire = wire[0]["variables"]
    expected = {}
    for key, item in wire.items():
        item = dict(item)
        if not item.get("valueInfo"):
            item.pop("valueInfo", None)
        expected[key] = item

    assert encode_variables(decode_variables(wire)) == expected


def test_multi_instance_element_variables_decode(fixture: Any) -> None:
    for task in fixture("fetch_and_lock_multi_instance"):
        decoded = decode_variables(task["variables"])
        assert decoded["creditScores"].value == [7, 3, 9]
        assert decoded["score"].value in (7, 3, 9)
        assert decoded["nrOfInstances"].value == 3


JAVA_SERIALIZED = {
    "type": "Object",
    "value": "rO0ABXNyABNqYXZhLnV0aWwuQXJyYXlMaXN0eIHSHZnHYZ0DAAFJAARzaXpleHAAAAAAdwQAAAAAeA==",
    "valueInfo": {
        "objectTypeName": "java.util.ArrayList",
        "serializationDataFormat": "application/x-java-serialized-object",
    },
}


def test_a_java_serialized_object_stays_opaque_and_is_resent_unchanged() -> None:
    decoded = decode_value(JAVA_SERIALIZED)

    assert decoded.is_opaque
    assert python_value(decoded) is decoded
    assert decoded.value == JAVA_SERIALIZED["value"]
    assert encode_value(decoded) == JAVA_SERIALIZED
    assert encode_variables(decode_variables({"legacy": JAVA_SERIALIZED})) == {"legacy": JAVA_SERIALIZED}


def test_an_unknown_type_stays_opaque_and_is_resent_unchanged() -> None:
    wire = {"type": "Spreadsheet", "value": {"cells": [1]}, "valueInfo": {"sheets": 1}}

    decoded = decode_value(wire)

    assert decoded.is_opaque
    assert python_value(decoded) is decoded
    assert encode_value(decoded) == wire


def test_a_null_value_of_any_type_decodes_to_none() -> None:
    for kind in ("String", "Integer", "Date", "Bytes", "Json"):
        assert python_value(decode_value({"type": kind, "value": None})) is None
    json_object = {"type": "Object", "value": None, "valueInfo": JSON_OBJECT_INFO}
    assert python_value(decode_value(json_object)) is None


@pytest.mark.parametrize(
    "wire",
    [
        None,
        [],
        "String",
        {},
        {"value": 1},
        {"type": 3, "value": 1},
        {"type": "Integer", "value": "1"},
        {"type": "Integer", "value": 1.5},
        {"type": "Integer", "value": True},
        {"type": "Long", "value": [1]},
        {"type": "Double", "value": "3.25"},
        {"type": "Double", "value": 10**400},
        {"type": "Boolean", "value": 1},
        {"type": "String", "value": 1},
        {"type": "Date", "value": 1700000000000},
        {"type": "Bytes", "value": "not base64!"},
        {"type": "Bytes", "value": 12},
        {"type": "Bytes", "value": "é"},
        {"type": "Json", "value": "{broken"},
        {"type": "Object", "value": "[1,", "valueInfo": JSON_OBJECT_INFO},
        {"type": "Null", "value": 0},
        {"type": "String", "value": "x", "valueInfo": ["not", "a", "map"]},
    ],
)
def test_malformed_wire_variables_raise_decode_error(wire: Any) -> None:
    with pytest.raises(DecodeError):
        decode_value(wire)


@pytest.mark.parametrize("wire", [[], "x", 1])
def test_a_variable_map_that_is_not_an_object_raises_decode_error(wire: Any) -> None:
    with pytest.raises(DecodeError):
        decode_variables(wire)


def test_a_null_variable_map_is_empty() -> None:
    assert decode_variables(None) == {}


def test_json_text_nested_deeper_than_the_stack_raises_decode_error() -> None:
    # The engine stores serialized values unchecked, so the text can be anything.
    deep = "[" * 100_000 + "]" * 100_000

    with pytest.raises(DecodeError, match="does not hold JSON"):
        decode_value({"type": "Json", "value": deep})


def test_a_variable_that_does_not_decode_is_named() -> None:
    wire = {
        "ok": {"type": "String", "value": "x"},
        "order": {"type": "Object", "value": "{not json", "valueInfo": JSON_OBJECT_INFO},
    }

    # The name is what an operator needs to find the bad value from an incident's message.
    with pytest.raises(DecodeError, match=r"^variable 'order': Object variable does not hold JSON: "):
        decode_variables(wire)


# --------------------------------------------------------------------------- properties

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=LONG_MIN, max_value=LONG_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_structures = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=12,
)
offsets = st.integers(min_value=-18 * 60 + 1, max_value=18 * 60 - 1).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
aware_datetimes = st.builds(
    lambda naive, tz: naive.replace(microsecond=naive.microsecond // 1000 * 1000, tzinfo=tz),
    st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 31)),
    offsets,
)
plain_values = (
    st.none()
    | st.booleans()
    | st.integers(min_value=LONG_MIN, max_value=LONG_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | aware_datetimes
    | st.binary()
    | st.lists(json_structures, max_size=5)
    | st.dictionaries(st.text(), json_structures, max_size=5)
)


@given(plain_values)
@settings(max_examples=300, deadline=None)
def test_plain_values_survive_the_wire(value: Any) -> None:
    decoded = python_value(decode_value(_wire_round_trip(encode_value(value))))

    assert decoded == value
    assert type(decoded) is type(value)


@given(aware_datetimes)
@settings(deadline=None)
def test_dates_keep_their_offset_across_the_wire(value: dt.datetime) -> None:
    decoded = decode_value(_wire_round_trip(encode_value(value))).value

    assert decoded.utcoffset() == value.utcoffset()


@given(st.integers(min_value=LONG_MIN, max_value=LONG_MAX))
@settings(deadline=None)
def test_ints_are_integer_exactly_when_they_fit_32_bits(value: int) -> None:
    assert encode_value(value)["type"] == ("Integer" if INT_MIN <= value <= INT_MAX else "Long")


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from([*sorted(variables._DECODERS), "File", "Foo"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=15,
)
wire_like = st.fixed_dictionaries(
    {"type": st.sampled_from([*sorted(variables._DECODERS), "File", "Foo"]) | json_like},
    optional={
        "value": json_like | st.text(alphabet='0123456789-T:.+ZAaé=/[]{}",', max_size=40),
        "valueInfo": json_like
        | st.fixed_dictionaries(
            {},
            optional={
                "serializationDataFormat": st.sampled_from(
                    ["application/json", "application/x-java-serialized-object"]
                )
                | json_like
            },
        ),
    },
)


@given(json_like | wire_like)
@example({"type": "Double", "value": -(10**309)})
@settings(max_examples=500, deadline=None)
def test_decoding_garbage_raises_only_decode_error(wire: Any) -> None:
    try:
        decoded = decode_value(wire)
    except DecodeError:
        return
    assert isinstance(decoded, TypedValue)


@given(st.dictionaries(st.text(max_size=10), json_like | wire_like, max_size=4) | json_like)
@settings(deadline=None)
def test_decoding_garbage_variable_maps_raises_only_decode_error(wire: Any) -> None:
    try:
        decode_variables(wire)
    except DecodeError:
        pass


@pytest.mark.parametrize("type_name", ["Long", "String", "date"])
def test_none_with_an_explicit_type_is_a_typed_null(type_name: str) -> None:
    # The engine keeps a variable of that type without a value.
    encoded = encode_value(None, type=type_name)

    assert encoded["value"] is None
    assert encoded["type"] == type_name[0].upper() + type_name[1:]
