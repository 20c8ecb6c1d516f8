"""The single cattrs converter between models and JSON-ready Python data.

Every attrs model gets camelCase wire names from one hook factory. A field may
name its wire key in ``metadata["wire"]``; ``None`` there means the field is
built from the whole wire object (a variable instance carries its typed value
at the top level). Variables and dates bypass the camelCase mapping and use
:mod:`camunda_ext.variables`.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Callable, Dict, Type, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from camunda_ext.errors import DecodeError
from camunda_ext.models import VariableMap
from camunda_ext.variables import TypedValue, decode_value, decode_variables, format_date, parse_date

T = TypeVar("T")

#: What a malformed answer makes cattrs (or a hook) raise; all become DecodeError.
_STRUCTURE_FAULTS = (
    cattrs.BaseValidationError,
    KeyError,
    TypeError,
    ValueError,
    AttributeError,
    OverflowError,
    RecursionError,  # nesting deeper than the stack, e.g. an activity-instance tree
)


def camel_case(name: str) -> str:
    """``process_definition_key_in`` -> ``processDefinitionKeyIn``."""
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


#: Prefix of the keys that carry fields built from the whole wire object.
_WHOLE = "\x00whole:"


def _strict_str(value: Any, _: Any) -> str:
    # cattrs would turn null or a number into "None" or "12": an id must really be text.
    if not isinstance(value, str):
        raise DecodeError("expected a string, got %r" % (value,))
    return value


def _as_is(value: Any, _: Any) -> Any:
    return value


def _wire_name(field: attrs.Attribute) -> Any:  # type: ignore[type-arg]
    return field.metadata.get("wire", camel_case(field.name))


def make_converter() -> cattrs.Converter:
    """Build the converter used for every request body and answer."""
    converter = cattrs.Converter(detailed_validation=False)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(_dt.datetime, lambda value, _: parse_date(value))
    converter.register_unstructure_hook(_dt.datetime, format_date)
    converter.register_structure_hook_func(
        lambda type_: type_ == VariableMap, lambda value, _: decode_variables(value)
    )
    converter.register_structure_hook(TypedValue, lambda value, _: decode_value(value))

    def structure_factory(cls: Type[Any]) -> Callable[[Any, Any], Any]:
        whole = [f for f in attrs.fields(cls) if f.metadata.get("wire", "") is None]
        overrides = {f.name: override(rename=_wire_name(f)) for f in attrs.fields(cls)}
        for f in whole:
            # Read from a key of our own that holds the field already built.
            overrides[f.name] = override(rename=_WHOLE + f.name, struct_hook=_as_is)
        structure = make_dict_structure_fn(cls, converter, **overrides)  # type: ignore[arg-type]
        if not whole:
            return structure

        def structure_with_whole(value: Any, type_: Any) -> Any:
            built = {_WHOLE + f.name: converter.structure(value, f.type) for f in whole}
            return structure({**value, **built}, type_)

        return structure_with_whole

    def unstructure_factory(cls: Type[Any]) -> Callable[[Any], Any]:
        overrides = {f.name: override(rename=_wire_name(f)) for f in attrs.fields(cls)}
        return make_dict_unstructure_fn(
            cls,
            converter,
            _cattrs_omit_if_default=True,
            **overrides,  # type: ignore[arg-type]
        )

    converter.register_structure_hook_factory(attrs.has, structure_factory)
    converter.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    return converter


_converter = make_converter()


def structure(data: Any, cls: Type[T]) -> T:
    """Build a model from decoded JSON.

    Raises:
        DecodeError: The data does not have the model's shape.
    """
    try:
        return _converter.structure(data, cls)
    except DecodeError:
        raise
    except _STRUCTURE_FAULTS as exc:
        raise DecodeError("malformed %s: %s" % (getattr(cls, "__name__", cls), exc)) from exc


def unstructure(model: Any) -> Dict[str, Any]:
    """The JSON-ready camelCase dict of a model, without fields left at their default."""
    return _converter.unstructure(model)  # type: ignore[no-any-return]
