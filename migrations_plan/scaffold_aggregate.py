"""The scaffolded service's ``Aggregate`` declaration, as code (``<package>/aggregates.py``).

When the monolith's settings declare an aggregate for the model, its contract (name, key, actions, schemas,
canonical fields) is copied as code: the service must not import the monolith's packages, and verify only
compares equal rows when both sides hash the same canonical fields. Otherwise the contract is derived from
the model's columns (their JSON types as ``strangler_sync.snapshots.canonical_value`` writes them).
Runs where Django is set up with the monolith's settings (``scaffold.model_shape``).
"""

from __future__ import annotations

import json
import uuid

from django.core.exceptions import FieldDoesNotExist

from strangler_sync.aggregates import DELETED, Aggregate, Schema

INTEGER_TYPES = frozenset({
    "AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField", "SmallIntegerField",
    "PositiveIntegerField", "PositiveBigIntegerField", "PositiveSmallIntegerField",
})
JSON_TYPES = {
    **dict.fromkeys(INTEGER_TYPES, (int,)), "BooleanField": (bool,), "FloatField": (float,),
    "JSONField": (dict, list),
    # canonical_value writes these as text: Decimal, dates and times, UUIDs
    **dict.fromkeys(["CharField", "TextField", "SlugField", "EmailField", "URLField", "UUIDField",
                     "GenericIPAddressField", "FilePathField", "FileField", "ImageField", "DecimalField",
                     "DateTimeField", "DateField", "TimeField"], (str,)),
}
TYPE_NAMES = {int: "int", str: "str", bool: "bool", float: "float", dict: "dict", list: "list", type(None): "None"}


class DeclarationError(ValueError):
    """The monolith's declaration cannot be copied to the service (a one-line reason)."""


def _stored_field(field):
    while field.is_relation:  # a foreign key is stored (and sent) as the key it points to
        field = field.target_field
    return field


def column_json_types(field) -> tuple:
    """The JSON types of one column's canonical value (nullable adds None; unknown kinds: any JSON)."""
    kind = _stored_field(field).get_internal_type()
    types = JSON_TYPES.get(kind, (dict, list, str, int, float, bool))
    return (*types, type(None)) if field.null else types


def key_type_of(model) -> type:
    kind = _stored_field(model._meta.pk).get_internal_type()
    return int if kind in INTEGER_TYPES else uuid.UUID if kind == "UUIDField" else str


def declared_for(*, model, aggregates: dict[str, Aggregate]) -> Aggregate | None:
    """The monolith's declaration bound to this model, if its settings have one."""
    found = [a for a in aggregates.values() if a.model and a.model.lower() == model._meta.label_lower]
    return found[0] if found else None


def service_aggregate(*, name: str, model, declared: Aggregate | None, service_model: str) -> Aggregate:
    """The service's declaration: the monolith's contract (or one derived from the columns) bound to the
    service's copy of the model, whose attributes are the monolith's column attnames."""
    if declared is None:
        columns = model._meta.concrete_fields
        return Aggregate(name=name, key=model._meta.pk.attname, key_type=key_type_of(model),
                         schemas={1: Schema(required={f.attname: column_json_types(f) for f in columns})},
                         model=service_model, fields=[f.attname for f in columns])
    if declared.name != name:
        raise DeclarationError(f"--aggregate: the monolith declares {model._meta.label} as aggregate "
                               f"{declared.name!r}, not {name!r}")
    fields = {}
    for canonical, attr in declared.fields.items():
        try:
            fields[canonical] = model._meta.get_field(attr).attname  # "product" -> the service's "product_id"
        except FieldDoesNotExist:  # a property, say: the service's table has no such column
            raise DeclarationError(f"the monolith's aggregate {name!r} maps {canonical!r} to {attr!r}, "
                                   f"which is not a column of {model._meta.label}") from None
    # snapshot stays None: the monolith's snapshot is its own code; the service sends the canonical fields
    return declared.bind(model=service_model, fields=fields, snapshot=None)


def _types_code(types: tuple) -> str:
    names = [TYPE_NAMES[t] for t in types]
    return names[0] if len(names) == 1 else f"({', '.join(names)})"


def _mapping_code(mapping: dict, *, indent: str) -> str:
    items = [f"{json.dumps(name)}: {_types_code(types)}" for name, types in mapping.items()]
    one_line = "{" + ", ".join(items) + "}"
    if len(indent) + len(one_line) <= 100:
        return one_line
    return "{\n" + "".join(f"{indent}    {item},\n" for item in items) + indent + "}"


def _strings_code(value, *, indent: str = "    ") -> str:
    """A list, tuple or dict of strings as code, one item a line when it does not fit on one."""
    if isinstance(value, dict):
        items, brackets = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in value.items()], "{}"
    else:
        items, brackets = [json.dumps(item) for item in value], "()" if isinstance(value, tuple) else "[]"
    one_line = ", ".join(items) + ("," if brackets == "()" and len(items) == 1 else "")
    if len(indent) + len(one_line) <= 100:
        return brackets[0] + one_line + brackets[1]
    return brackets[0] + "\n" + "".join(f"{indent}    {item},\n" for item in items) + indent + brackets[1]


def declaration_code(*, const: str, aggregate: Aggregate) -> str:
    """``CONST = Aggregate(...)`` as Python source (imports: Aggregate, Schema and uuid when a UUID key)."""
    schemas = []
    for version, schema in sorted(aggregate.schemas.items()):
        indent = " " * 12
        parts = [f"required={_mapping_code(schema.required, indent=indent)}"]
        if schema.optional:
            parts.append(f"optional={_mapping_code(schema.optional, indent=indent)}")
        schemas.append(f"        {version}: Schema(\n            {(',' + chr(10) + '            ').join(parts)},\n"
                       f"        ),")
    fields = aggregate.fields
    fields_code = _strings_code(list(fields) if all(k == v for k, v in fields.items()) else dict(fields))
    key_type = "uuid.UUID" if aggregate.key_type is uuid.UUID else aggregate.key_type.__name__
    lines = [f"{const} = Aggregate(", f"    name={json.dumps(aggregate.name)},",
             f"    key={json.dumps(aggregate.key)},", f"    key_type={key_type},"]
    if aggregate.actions != ("created", "updated", DELETED):
        lines.append(f"    actions={_strings_code(aggregate.actions)},")
    lines += ["    schemas={", *schemas, "    },", f"    model={json.dumps(aggregate.model)},",
              f"    fields={fields_code},"]
    if aggregate.capture != "explicit":  # the declaration's default
        lines.append(f"    capture={json.dumps(aggregate.capture)},")
    lines.append(")")
    return "\n".join(lines) + "\n"
