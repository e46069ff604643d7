"""Read answers validated and encoded as their response model would, without model instances.

A read route's answer is a dict its service built; ``model.model_validate(data)`` then
``model_dump_json()`` made an instance of every nested model (every day of a 90-day usage
report) only to serialize it again: 148 us of the 90-day ``/tenant/usage``'s CPU, against
17 us for ``orjson`` of the same dict (profiled). ``encoder(model)`` gives the same validation
and the same JSON from pydantic-core's own validator and serializer, with each model's schema
turned into the schema of a typed dict (the same fields, types, defaults, aliases and
configuration): dicts in, dicts validated, the same serializer out.

Only plain data models convert (fields of plain types, lists, optionals and nested such models);
a model with validators, computed fields, a custom ``__init__`` or a schema this does not know
keeps ``model_validate`` and ``model_dump_json`` (``encoder`` says which). ``tests/test_answers.py``
compares both ways on every read route's response model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic_core import SchemaSerializer, SchemaValidator

Encode = Callable[[Mapping[str, Any]], bytes]

# schemas whose sub-schemas are converted (the keys that hold them) and leaves kept as they are
_CONTAINERS = {
    "list": ("items_schema",),
    "set": ("items_schema",),
    "frozenset": ("items_schema",),
    "nullable": ("schema",),
    "default": ("schema",),
    "dict": ("keys_schema", "values_schema"),
}
_LEAVES = frozenset(
    {"str", "int", "float", "bool", "date", "datetime", "time", "uuid", "decimal", "any", "none"}
    | {"literal", "enum", "bytes", "timedelta"}
)
_FIELD_KEYS = ("validation_alias", "serialization_alias", "serialization_exclude")


class Unsupported(Exception):
    """A schema ``_as_typed_dict`` does not convert."""


def _as_typed_dict(schema: Mapping[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if kind == "model":
        return _model(schema)
    if kind in _LEAVES:
        if any(key in schema for key in ("serialization", "ref")) and kind != "enum":
            raise Unsupported(f"{kind} with a custom serializer")
        return dict(schema)
    if kind in _CONTAINERS:
        converted = dict(schema)
        for key in _CONTAINERS[kind]:
            if key in schema:
                converted[key] = _as_typed_dict(schema[key])
        if "serialization" in schema:
            raise Unsupported(f"{kind} with a custom serializer")
        return converted
    if kind == "union":
        converted = dict(schema)
        converted["choices"] = [
            _as_typed_dict(choice) if isinstance(choice, Mapping) else choice
            for choice in schema["choices"]
        ]
        return converted
    raise Unsupported(str(kind))


def _model(schema: Mapping[str, Any]) -> dict[str, Any]:
    inner = schema["schema"]
    if (
        inner.get("type") != "model-fields"
        or inner.get("computed_fields")
        or schema.get("root_model")
        or schema.get("custom_init")
        or schema.get("post_init")
        or "serialization" in schema
    ):
        raise Unsupported(f"model {inner.get('model_name')}")
    config = schema.get("config") or {}
    fields = {}
    for name, field in inner["fields"].items():
        if field.get("type") != "model-field" or field.get("frozen"):
            raise Unsupported(f"field {name}")
        converted: dict[str, Any] = {
            "type": "typed-dict-field",
            "schema": _as_typed_dict(field["schema"]),
            "required": field["schema"].get("type") != "default",
        }
        for key in _FIELD_KEYS:
            if key in field:
                converted[key] = field[key]
        fields[name] = converted
    typed: dict[str, Any] = {"type": "typed-dict", "fields": fields, "config": dict(config)}
    if "extra_fields_behavior" in config:
        typed["extra_behavior"] = config["extra_fields_behavior"]
    return typed


@cache
def encoder(model: type[BaseModel], exclude_unset: bool = False) -> tuple[Encode, bool]:
    """``(encode, fast)``: ``encode(data)`` is ``model.model_validate(data)
    .model_dump_json(by_alias=True, exclude_unset=...)`` as bytes; ``fast`` when it runs on
    the model's schema as a typed dict (see the module docstring)."""

    def by_model(data: Mapping[str, Any]) -> bytes:
        answer = model.model_validate(data)
        return answer.model_dump_json(by_alias=True, exclude_unset=exclude_unset).encode()

    if exclude_unset:  # a dict does not know which of its fields were set
        return by_model, False
    try:
        schema = _as_typed_dict(model.__pydantic_core_schema__)
    except (Unsupported, KeyError):
        return by_model, False
    validator = SchemaValidator(schema)
    serializer = SchemaSerializer(schema)

    def by_schema(data: Mapping[str, Any]) -> bytes:
        return serializer.to_json(validator.validate_python(data), by_alias=True)

    return by_schema, True
