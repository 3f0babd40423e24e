"""Breaking-change finder for two OpenAPI 3 documents (the monolith's and a service's), for chosen paths.

A change breaks clients when an operation, a status code, a parameter or a field disappears, a type
(type/format/nullable/enum) changes, the set of success codes changes, or a new required input appears.
New optional fields, new error codes and documentation changes are not breaks.
"""

from __future__ import annotations

from collections.abc import Iterable

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_TYPE_KEYS = ("type", "format", "nullable")


def _resolve(document: dict, schema: dict | None, seen: tuple = ()) -> dict:
    """Follow $ref and single-element allOf (how drf-spectacular wraps nullable refs)."""
    schema = dict(schema or {})
    while True:
        if "$ref" in schema:
            ref = schema.pop("$ref")
            if ref in seen:  # recursive schema: stop here, the caller compares the ref names
                return {"x-recursive-ref": ref}
            seen = (*seen, ref)
            target = document
            for part in ref.removeprefix("#/").split("/"):
                target = target[part]
            schema = {**target, **schema}
        elif "allOf" in schema and len(schema["allOf"]) == 1:
            (inner,) = schema.pop("allOf")
            schema = {**_resolve(document, inner, seen), **schema}
        else:
            return schema


def _enum_values(document: dict, schema: dict) -> set | None:
    """Enum values, including drf-spectacular's oneOf[{enum}, {NullEnum}] encoding."""
    if "enum" in schema:
        return set(schema["enum"])
    if "oneOf" in schema:
        values: set = set()
        for option in schema["oneOf"]:
            resolved = _resolve(document, option)
            if "enum" not in resolved:
                return None
            values |= set(resolved["enum"])
        return values
    return None


def schema_breaks(
    *, old_doc: dict, new_doc: dict, old: dict | None, new: dict | None, where: str, direction: str
) -> list[str]:
    """Breaks between two schemas. direction "response": removed fields break; "request": new required ones do."""
    old_s, new_s = _resolve(old_doc, old), _resolve(new_doc, new)
    if "x-recursive-ref" in old_s or "x-recursive-ref" in new_s:
        return []
    breaks = []
    for key in _TYPE_KEYS:
        if old_s.get(key) != new_s.get(key):
            breaks.append(f"{where}: {key} changed from {old_s.get(key)!r} to {new_s.get(key)!r}")
    old_enum, new_enum = _enum_values(old_doc, old_s), _enum_values(new_doc, new_s)
    if old_enum is not None and old_enum != new_enum:
        breaks.append(f"{where}: enum changed from {sorted(map(str, old_enum))} to {sorted(map(str, new_enum or []))}")
    if old_s.get("type") == "array" or new_s.get("type") == "array":
        breaks += schema_breaks(
            old_doc=old_doc, new_doc=new_doc, old=old_s.get("items"), new=new_s.get("items"),
            where=f"{where}[*]", direction=direction,
        )
    old_props, new_props = old_s.get("properties") or {}, new_s.get("properties") or {}
    for name, old_prop in old_props.items():
        if name not in new_props:
            if direction == "response" or name in set(old_s.get("required", [])):
                breaks.append(f"{where}.{name}: field removed")
            continue
        breaks += schema_breaks(
            old_doc=old_doc, new_doc=new_doc, old=old_prop, new=new_props[name],
            where=f"{where}.{name}", direction=direction,
        )
    if direction == "response":
        for name in set(old_s.get("required", [])) - set(new_s.get("required", [])):
            if name in new_props:
                breaks.append(f"{where}.{name}: no longer always present")
    else:
        for name in set(new_s.get("required", [])) - set(old_s.get("required", [])):
            breaks.append(f"{where}.{name}: newly required input")
    return breaks


def _params(operation: dict, path_item: dict) -> dict[tuple[str, str], dict]:
    params = {}
    for param in [*path_item.get("parameters", []), *operation.get("parameters", [])]:
        params[(param["in"], param["name"])] = param
    return params


def operation_breaks(*, old_doc: dict, new_doc: dict, path: str, method: str) -> list[str]:
    where = f"{method.upper()} {path}"
    old_item, new_item = old_doc["paths"][path], new_doc["paths"].get(path)
    if new_item is None or method not in new_item:
        return [f"{where}: operation removed"]
    old_op, new_op = old_item[method], new_item[method]
    breaks = []

    old_params, new_params = _params(old_op, old_item), _params(new_op, new_item)
    for key, param in old_params.items():
        if key not in new_params:
            breaks.append(f"{where}: {key[0]} parameter {key[1]!r} removed")
            continue
        breaks += schema_breaks(
            old_doc=old_doc, new_doc=new_doc, old=param.get("schema"), new=new_params[key].get("schema"),
            where=f"{where} parameter {key[1]}", direction="request",
        )
    for key, param in new_params.items():
        if key not in old_params and param.get("required"):
            breaks.append(f"{where}: new required {key[0]} parameter {key[1]!r}")

    old_body, new_body = old_op.get("requestBody"), new_op.get("requestBody")
    if old_body:
        if not new_body:
            breaks.append(f"{where}: request body no longer accepted")
        else:
            for media, content in old_body.get("content", {}).items():
                new_content = new_body.get("content", {}).get(media)
                if new_content is None:
                    breaks.append(f"{where}: request media type {media} no longer accepted")
                    continue
                breaks += schema_breaks(
                    old_doc=old_doc, new_doc=new_doc, old=content.get("schema"), new=new_content.get("schema"),
                    where=f"{where} request {media} $", direction="request",
                )
    elif new_body and new_body.get("required"):
        breaks.append(f"{where}: request body newly required")

    old_responses, new_responses = old_op.get("responses", {}), new_op.get("responses", {})
    old_success = {code for code in old_responses if str(code).startswith("2")}
    new_success = {code for code in new_responses if str(code).startswith("2")}
    if old_success != new_success:
        breaks.append(f"{where}: success status changed from {sorted(old_success)} to {sorted(new_success)}")
    for code, response in old_responses.items():
        if code not in new_responses:
            if code not in old_success:
                breaks.append(f"{where}: status {code} removed")
            continue
        for media, content in (response.get("content") or {}).items():
            new_content = (new_responses[code].get("content") or {}).get(media)
            if new_content is None:
                breaks.append(f"{where} {code}: response media type {media} removed")
                continue
            breaks += schema_breaks(
                old_doc=old_doc, new_doc=new_doc, old=content.get("schema"), new=new_content.get("schema"),
                where=f"{where} {code} {media} $", direction="response",
            )
    return breaks


def contract_breaks(*, old_doc: dict, new_doc: dict, path_prefixes: Iterable[str]) -> list[str]:
    """Every break for operations of old_doc under the given prefixes (each path must then exist in new_doc)."""
    prefixes = tuple(path_prefixes)
    breaks = []
    for path, item in sorted(old_doc.get("paths", {}).items()):
        if not path.startswith(prefixes):
            continue
        for method in METHODS:
            if method in item:
                breaks += operation_breaks(old_doc=old_doc, new_doc=new_doc, path=path, method=method)
    return breaks
