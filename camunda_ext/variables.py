"""Typed process variables and their ``{"type", "value", "valueInfo"}`` wire form.

Plain Python values are typed automatically (see :func:`infer`); a
:class:`TypedValue`, built directly or with the helpers :func:`Json`,
:func:`Long`, :func:`File`, ... chooses the Camunda type explicitly.

Decoding turns the engine's JSON back into Python values: ``Date`` into an aware
:class:`~datetime.datetime`, ``Bytes`` into :class:`bytes`, ``Json`` and JSON
``Object`` values into Python structures. Values with no Python equivalent
(Java-serialized objects, ``File`` metadata, unknown types) stay a
:class:`TypedValue` and are sent back unchanged when passed on.

Naive datetimes are refused with :class:`~camunda_ext.errors.VariableError`:
guessing a time zone would shift the instant silently. Dates carry
millisecond precision, the engine's; microseconds are truncated.

All functions here are pure and thread-safe.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import math
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Set

import attrs

from camunda_ext.errors import DecodeError, VariableError

__all__ = [
    "Boolean",
    "Bytes",
    "Date",
    "Double",
    "File",
    "Integer",
    "Json",
    "Long",
    "Null",
    "Object",
    "Short",
    "String",
    "TypedValue",
    "Xml",
    "decode_value",
    "decode_variables",
    "encode_value",
    "encode_variables",
    "format_date",
    "infer",
    "parse_date",
    "python_value",
    "to_typed",
]

JSON_FORMAT = "application/json"
JAVA_SERIALIZED_FORMAT = "application/x-java-serialized-object"
LIST_TYPE_NAME = "java.util.ArrayList"
MAP_TYPE_NAME = "java.util.LinkedHashMap"

_INT_RANGES = {
    "Short": (-(2**15), 2**15 - 1),
    "Integer": (-(2**31), 2**31 - 1),
    "Long": (-(2**63), 2**63 - 1),
}


def _canonical_type(name: str) -> str:
    """The canonical spelling of a known Camunda type name (``"long"`` -> ``"Long"``); others as given."""
    if not isinstance(name, str):
        raise VariableError("a Camunda type name must be a str, got %r" % (name,))
    return _CANONICAL_TYPES.get(name.lower(), name)


@attrs.frozen
class TypedValue:
    """A variable value with its Camunda type.

    Thread-safe (immutable).

    Attributes:
        type: The Camunda type name as on the wire, e.g. ``"Long"`` or ``"Object"``; known
            names are spelled canonically whatever the case given (``"long"`` -> ``"Long"``).
        value: The Python value (``bytes`` for Bytes/File, ``datetime`` for Date,
            Python structures for Json and JSON Objects).
        value_info: The ``valueInfo`` map, e.g. ``objectTypeName``, ``filename``.
    """

    type: str = attrs.field(converter=_canonical_type)
    value: Any
    value_info: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def is_opaque(self) -> bool:
        """Whether the value has no Python equivalent and is kept as sent by the engine."""
        return _is_opaque(self.type, self.value_info)


def String(value: str) -> TypedValue:  # noqa: N802 - reads like a type name at call sites
    """A ``String`` variable.

    Raises:
        VariableError: The value is not a str.
    """
    return _checked("String", value)


def Boolean(value: bool) -> TypedValue:  # noqa: N802
    """A ``Boolean`` variable.

    Raises:
        VariableError: The value is not a bool.
    """
    return _checked("Boolean", value)


def Short(value: int) -> TypedValue:  # noqa: N802
    """A ``Short`` (16-bit) variable.

    Raises:
        VariableError: The value is not an int (bools are not) or is out of range.
    """
    return _checked("Short", value)


def Integer(value: int) -> TypedValue:  # noqa: N802
    """An ``Integer`` (32-bit) variable.

    Raises:
        VariableError: The value is not an int (bools are not) or is out of range.
    """
    return _checked("Integer", value)


def Long(value: int) -> TypedValue:  # noqa: N802
    """A ``Long`` (64-bit) variable.

    Raises:
        VariableError: The value is not an int (bools are not) or is out of range.
    """
    return _checked("Long", value)


def Double(value: float) -> TypedValue:  # noqa: N802
    """A ``Double`` variable; an int is held as the equal float.

    Raises:
        VariableError: The value is not an int or float (bools and strs are not), is NaN
            or infinite, or is an int beyond the range of a double.
    """
    return _checked("Double", value)


def Date(value: _dt.datetime) -> TypedValue:  # noqa: N802
    """A ``Date`` variable from an aware datetime.

    Raises:
        VariableError: The value is not a datetime, or is naive.
    """
    return _checked("Date", value)


def Bytes(value: bytes) -> TypedValue:  # noqa: N802
    """A ``Bytes`` variable from bytes, a bytearray or a memoryview (held as bytes).

    Raises:
        VariableError: The value is none of these (an int is not a length, a str has no encoding).
    """
    return _checked("Bytes", value)


def Null() -> TypedValue:  # noqa: N802
    """A ``Null`` variable."""
    return TypedValue("Null", None)


def Json(value: Any) -> TypedValue:  # noqa: N802
    """A Spin ``Json`` variable (usable with Spin's JSON API, not as a collection).

    Args:
        value: A Python structure (serialized as JSON) or an already serialized string.

    Raises:
        VariableError: The structure is not JSON: a value JSON cannot carry, or a dict key
            that is not a str (JSON would turn ``1`` into ``"1"``).
    """
    return _checked("Json", value)


def Xml(value: str) -> TypedValue:  # noqa: N802
    """A Spin ``Xml`` variable from an XML document string.

    Raises:
        VariableError: The value is not a str.
    """
    return _checked("Xml", value)


def Object(  # noqa: N802
    value: Any,
    object_type_name: str,
    serialization_data_format: str = JSON_FORMAT,
) -> TypedValue:
    """An ``Object`` variable.

    Args:
        value: A Python structure (serialized as JSON) or an already serialized string.
        object_type_name: The Java class, e.g. ``"java.util.ArrayList"``.
        serialization_data_format: ``application/json`` unless told otherwise; in another
            format the value is sent as given.

    Raises:
        VariableError: A JSON value that is not JSON, as for :func:`Json`.
    """
    return _checked("Object", value, _object_info(object_type_name, serialization_data_format))


def _object_info(object_type_name: str, serialization_data_format: str) -> Dict[str, Any]:
    return {"objectTypeName": object_type_name, "serializationDataFormat": serialization_data_format}


def File(  # noqa: N802
    content: bytes,
    filename: str,
    mime_type: Optional[str] = None,
    encoding: Optional[str] = None,
) -> TypedValue:
    """A ``File`` variable.

    Args:
        content: The file's bytes (or a bytearray or memoryview, held as bytes).
        filename: The file name the engine stores (required by the engine).
        mime_type: Optional MIME type.
        encoding: Optional text encoding of the content.

    Raises:
        VariableError: The content is not bytes, a bytearray or a memoryview.
    """
    info: Dict[str, Any] = {"filename": filename}
    if mime_type is not None:
        info["mimeType"] = mime_type
    if encoding is not None:
        info["encoding"] = encoding
    return _checked("File", content, info)


def _checked(kind: str, value: Any, value_info: Optional[Mapping[str, Any]] = None) -> TypedValue:
    """A TypedValue of a value given for a type, checked as encoding will check it.

    The one gate of the helpers above and of ``type=``: the checks are the encoders'
    (:data:`_ENCODERS`), so a value accepted here is one that encodes. ``None`` is refused:
    :func:`Null` is the value-less variable.

    Raises:
        VariableError: The value does not fit the type.
    """
    typed = TypedValue(kind, value, value_info or {})
    if value is None and typed.type != "Null":
        raise VariableError("%s needs a value, got None (Null() is the variable without one)" % typed.type)
    _wire_value(typed)
    normalize = _NORMALIZERS.get(typed.type)
    return typed if normalize is None else attrs.evolve(typed, value=normalize(value))


# ---------------------------------------------------------------------------
# Dates


def format_date(value: _dt.datetime) -> str:
    """Render an aware datetime in the engine's pattern ``yyyy-MM-dd'T'HH:mm:ss.SSSZ``.

    Raises:
        VariableError: The datetime is naive.
    """
    offset = value.utcoffset()
    if offset is None:
        raise VariableError(
            "naive datetime %s has no time zone; pass an aware datetime "
            "(e.g. .replace(tzinfo=timezone.utc)) so the instant is not guessed" % value.isoformat()
        )
    if offset.seconds % 60 or offset.microseconds:
        # The engine's pattern has no room for sub-minute offsets: send the same instant in UTC.
        value = value.astimezone(_dt.timezone.utc)
        offset = _dt.timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03d%s%02d%02d" % (
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond // 1000,
        sign,
        minutes // 60,
        minutes % 60,
    )


#: ``yyyy-MM-dd'T'HH:mm:ss.SSSZ`` exactly, as the engine writes dates.
_ENGINE_DATE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}")


def parse_date(text: Any) -> _dt.datetime:
    """Parse an engine date (``2026-12-04T10:11:12.345+0000``) into an aware datetime.

    Raises:
        DecodeError: The text is not such a date.
    """
    if not isinstance(text, str):
        raise DecodeError("expected a date string, got %r" % (text,))
    try:
        if _ENGINE_DATE.fullmatch(text):
            # The engine's exact shape: fromisoformat is ~40x faster than strptime.
            return _dt.datetime.fromisoformat(text[:-2] + ":" + text[-2:])
        return _dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        raise DecodeError("not an engine date: %r" % (text,)) from None


# ---------------------------------------------------------------------------
# Encoding


def infer(value: Any) -> TypedValue:
    """Choose the Camunda type of a plain Python value.

    Raises:
        VariableError: The value has no Camunda type (e.g. a set, a naive datetime,
            an int beyond 64 bits, NaN).
    """
    typed = _infer(value)
    _wire_value(typed)
    return typed


def _infer(value: Any) -> TypedValue:
    if isinstance(value, TypedValue):
        return value
    if value is None:
        return TypedValue("Null", None)
    if isinstance(value, bool):
        return TypedValue("Boolean", value)
    if isinstance(value, int):
        low, high = _INT_RANGES["Integer"]
        return TypedValue("Integer" if low <= value <= high else "Long", value)
    if isinstance(value, float):
        return TypedValue("Double", value)
    if isinstance(value, str):
        return TypedValue("String", value)
    if isinstance(value, _dt.datetime):
        return TypedValue("Date", value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return TypedValue("Bytes", bytes(value))
    # Not Object(...): infer() and encode_value check the value once, after inference.
    if isinstance(value, (list, tuple)):
        return TypedValue("Object", value, _object_info(LIST_TYPE_NAME, JSON_FORMAT))
    if isinstance(value, dict):
        return TypedValue("Object", value, _object_info(MAP_TYPE_NAME, JSON_FORMAT))
    raise VariableError(
        "cannot send a %s as a Camunda variable; use a TypedValue to choose the type" % type(value).__name__
    )


def to_typed(value: Any, type: Optional[str] = None) -> TypedValue:
    """A :class:`TypedValue` for a value: inferred, or of the given Camunda type name.

    Raises:
        VariableError: The value has no Camunda type, or cannot take the given one.
    """
    typed = _typed(value, type)
    _wire_value(typed)
    return typed


def _typed(value: Any, type: Optional[str]) -> TypedValue:
    """The TypedValue of a value, not yet checked against its type (encoding checks it)."""
    if type is not None:
        type = _canonical_type(type)
    if isinstance(value, TypedValue) and type is not None and type != value.type:
        raise VariableError("a %s value cannot be sent as type %r" % (value.type, type))
    if type is None or isinstance(value, TypedValue):
        return _infer(value)
    return _explicit(value, type)


def encode_value(value: Any, type: Optional[str] = None) -> Dict[str, Any]:
    """Build the wire form of one variable.

    Args:
        value: A plain Python value or a :class:`TypedValue`.
        type: Optional Camunda type name, in any case (``"long"`` is sent as ``"Long"``);
            overrides inference for plain values.

    Returns:
        The ``{"type", "value", "valueInfo"?}`` dict.

    Raises:
        VariableError: The value does not fit the type, or has none.
    """
    typed = _typed(value, type)
    wire: Dict[str, Any] = {"type": typed.type, "value": _wire_value(typed)}
    if typed.value_info:
        wire["valueInfo"] = dict(typed.value_info)
    return wire


def encode_variables(variables: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """Encode a mapping of names to values; None stays None (the field is left out)."""
    if variables is None:
        return None
    return {_name(name): encode_value(value) for name, value in variables.items()}


def _name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise VariableError("a variable name must be a non-empty string, got %r" % (name,))
    return name


def _explicit(value: Any, type_name: str) -> TypedValue:
    if type_name == "Object":
        inferred = _infer(value)
        if inferred.type != "Object":
            raise VariableError("type 'Object' needs a list or dict (or an Object(...) value)")
        return inferred
    if type_name == "File":
        raise VariableError("a File needs a filename: use File(content, filename)")
    if value is None:
        # A typed null: the engine keeps a variable of that type without a value.
        return TypedValue(type_name, None)
    return _checked(type_name, value)


def _wire_value(typed: TypedValue) -> Any:
    kind, value = typed.type, typed.value
    encode = _ENCODERS.get(kind)
    if value is None or encode is None:
        # Null, a File read back without content, or a type this library does not
        # know (a custom engine type): sent as given.
        return value
    if kind == "Object" and typed.value_info.get("serializationDataFormat") != JSON_FORMAT:
        return value  # serialized by someone else (e.g. Java): passed on untouched
    return encode(kind, value)


def _encode_int(kind: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise VariableError("%s needs an int, got %r" % (kind, value))
    low, high = _INT_RANGES[kind]
    if not low <= value <= high:
        raise VariableError("%d is out of range for %s" % (value, kind))
    return value


def _encode_double(kind: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise VariableError("Double needs an int or float, got %r" % (value,))
    try:
        number = float(value)
    except OverflowError:  # only an int can be beyond a double
        raise VariableError(
            "Double cannot carry an int of %d bits: beyond the range of a double" % int(value).bit_length()
        ) from None
    if not math.isfinite(number):
        raise VariableError("Double cannot carry %r (JSON has no NaN or infinity)" % (value,))
    return number


def _encode_string(kind: str, value: Any) -> str:
    if not isinstance(value, str):
        raise VariableError("%s needs a str, got %r" % (kind, value))
    return value


def _encode_boolean(kind: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise VariableError("Boolean needs a bool, got %r" % (value,))
    return value


def _encode_date(kind: str, value: Any) -> str:
    if not isinstance(value, _dt.datetime):
        raise VariableError("Date needs a datetime, got %r" % (value,))
    return format_date(value)


def _encode_bytes(kind: str, value: Any) -> str:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise VariableError(
            "%s needs bytes, a bytearray or a memoryview, got %s" % (kind, type(value).__name__)
        )
    return base64.b64encode(bytes(value)).decode("ascii")


def _encode_json_text(kind: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    _check_json_keys(kind, value)
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise VariableError("%s value is not JSON-serializable: %s" % (kind, exc)) from None
    except RecursionError:
        raise VariableError("%s value is nested too deeply to serialize" % kind) from None


def _check_json_keys(kind: str, value: Any) -> None:
    """Refuse dict keys that are not str, at any depth.

    json.dumps would turn ``1`` into ``"1"``, so the value read back would differ, and
    ``{1: .., "1": ..}`` into an object with a duplicate key.
    """
    # Iterative, with each container visited once: no recursion limit, and a cycle ends
    # the walk (json.dumps then reports it).
    pending: List[Any] = [value]
    seen: Set[int] = set()
    while pending:
        item = pending.pop()
        if not isinstance(item, (dict, list, tuple)) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, dict):
            for key in item:
                if not isinstance(key, str):
                    raise VariableError(
                        "%s value has a dict key that is not a str: %r (%s); JSON keys are strings, "
                        "so it would be sent changed" % (kind, key, type(key).__name__)
                    )
            pending.extend(item.values())
        else:
            pending.extend(item)


def _encode_null(kind: str, value: Any) -> None:
    raise VariableError("Null carries no value, got %r" % (value,))


_ENCODERS = {
    "String": _encode_string,
    "Xml": _encode_string,
    "Boolean": _encode_boolean,
    "Short": _encode_int,
    "Integer": _encode_int,
    "Long": _encode_int,
    "Double": _encode_double,
    "Date": _encode_date,
    "Bytes": _encode_bytes,
    "File": _encode_bytes,
    "Json": _encode_json_text,
    "Object": _encode_json_text,
    "Null": _encode_null,
}

#: The engine's type names by their lower-case spelling: the engine reads "long" as "Long",
#: so the checks of "Long" must apply to it too.
_CANONICAL_TYPES = {name.lower(): name for name in _ENCODERS}

#: How a checked value of these types is held: as the float sent, as immutable bytes.
_NORMALIZERS: Dict[str, Callable[[Any], Any]] = {"Double": float, "Bytes": bytes, "File": bytes}


# ---------------------------------------------------------------------------
# Decoding


def _is_opaque(kind: str, value_info: Mapping[str, Any]) -> bool:
    if kind == "Object":
        return value_info.get("serializationDataFormat") != JSON_FORMAT
    return kind == "File" or kind not in _DECODERS


def decode_value(wire: Any) -> TypedValue:
    """Decode one wire variable into a :class:`TypedValue` holding a Python value.

    Raises:
        DecodeError: The wire form is malformed (not an object, no type, a value that
            does not fit its type).
    """
    if not isinstance(wire, dict):
        raise DecodeError("a variable must be a JSON object, got %r" % (wire,))
    kind = wire.get("type")
    if not isinstance(kind, str):
        raise DecodeError("variable without a type: %r" % (wire,))
    kind = _canonical_type(kind)
    info = wire.get("valueInfo") or {}
    if not isinstance(info, dict):
        raise DecodeError("valueInfo must be an object, got %r" % (info,))
    value = wire.get("value")
    if value is None or _is_opaque(kind, info):
        return TypedValue(kind, value, info)
    return TypedValue(kind, _DECODERS[kind](kind, value), info)


def decode_variables(wire: Any) -> Dict[str, TypedValue]:
    """Decode a ``{name: wire variable}`` map; ``null`` gives an empty map.

    Raises:
        DecodeError: The map or one of its variables is malformed.
    """
    if wire is None:
        return {}
    if not isinstance(wire, dict):
        raise DecodeError("variables must be a JSON object, got %r" % (wire,))
    decoded = {}
    for name, item in wire.items():
        try:
            decoded[name] = decode_value(item)
        except DecodeError as error:
            # Name the variable: the message may become an incident's, where it is all an operator sees.
            raise DecodeError("variable %r: %s" % (name, error)) from None
    return decoded


def python_value(typed: TypedValue) -> Any:
    """The value a handler sees: the Python value, or the TypedValue itself when opaque."""
    return typed if typed.is_opaque else typed.value


def _decode_int(kind: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError("%s variable with value %r" % (kind, value))
    return value


def _decode_double(kind: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DecodeError("Double variable with value %r" % (value,))
    try:
        return float(value)
    except OverflowError:
        raise DecodeError("Double variable beyond the range of a double: %r" % (value,)) from None


def _decode_string(kind: str, value: Any) -> str:
    if not isinstance(value, str):
        raise DecodeError("%s variable with value %r" % (kind, value))
    return value


def _decode_boolean(kind: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise DecodeError("Boolean variable with value %r" % (value,))
    return value


def _decode_date(kind: str, value: Any) -> _dt.datetime:
    return parse_date(value)


def _decode_bytes(kind: str, value: Any) -> bytes:
    if not isinstance(value, str):
        raise DecodeError("Bytes variable with value %r" % (value,))
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError("Bytes variable is not base64") from None


def _decode_json(kind: str, value: Any) -> Any:
    if not isinstance(value, str):
        # deserializeValues=true renders the structure itself.
        return value
    try:
        return json.loads(value)
    except (ValueError, RecursionError) as error:
        # The engine stores serialized values unchecked: the text may be anything, nested without end.
        raise DecodeError("%s variable does not hold JSON: %s" % (kind, error)) from None


def _decode_null(kind: str, value: Any) -> None:
    raise DecodeError("Null variable with value %r" % (value,))


_DECODERS = {
    "String": _decode_string,
    "Xml": _decode_string,
    "Boolean": _decode_boolean,
    "Short": _decode_int,
    "Integer": _decode_int,
    "Long": _decode_int,
    "Double": _decode_double,
    "Date": _decode_date,
    "Bytes": _decode_bytes,
    "Json": _decode_json,
    "Object": _decode_json,
    "Null": _decode_null,
}
