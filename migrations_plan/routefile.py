"""Edit routes in the route file as text (comments survive), check with the proxy's loader, write atomically.

The proxy hot-reloads the file (mtime/size/sha256 poll), so a write here is a routing change within a second.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from migrations_plan.errors import ActionFailed
from servicekit.files import file_write_atomic
from strangler_proxy.loader import RouteFileError, parse_route_text

_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./-]*$")


def render_value(value: Any) -> str:
    """A one-line YAML rendering (flow style) of a route value."""
    if isinstance(value, str):
        return value if _PLAIN.match(value) and yaml.safe_load(value) == value else json.dumps(value)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {render_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(render_value(v) for v in value) + "]"
    raise TypeError(f"cannot render {value!r}")


def _route_node(root: yaml.Node, prefix: str, source: str) -> yaml.MappingNode:
    routes = next((v for k, v in root.value if k.value == "routes"), None)
    found = []
    for node in routes.value if isinstance(routes, yaml.SequenceNode) else ():
        for key, value in node.value:
            if key.value in ("prefix", "path") and value.value == prefix:
                found.append(node)
    if len(found) != 1:
        raise ActionFailed(f"{source}: route {prefix!r} {'not found' if not found else 'is ambiguous'}")
    return found[0]


def route_values(text: str, prefix: str, keys: list[str], *, source: str) -> dict[str, Any]:
    """Current values of `keys` on the route (None when absent)."""
    node = _route_node(yaml.compose(text), prefix, source)
    present = {k.value: yaml.safe_load(yaml.serialize(v)) for k, v in node.value}
    return {key: present.get(key) for key in keys}


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _entry_end(text: str, value: yaml.Node) -> int:
    """Index just past the entry's last line (block values end where the next token starts: step back)."""
    end = value.end_mark.index
    while end > 0 and text[end - 1] in " \t\n":
        end -= 1
    newline = text.find("\n", end)
    return len(text) if newline == -1 else newline + 1


def edit_route(text: str, prefix: str, changes: dict[str, Any], *, source: str) -> str:
    """Return the text with the route's keys set (None removes a key); one key per edit, bottom-up by position."""
    for key, value in changes.items():
        root = yaml.compose(text)
        node = _route_node(root, prefix, source)
        if node.flow_style:
            data = yaml.safe_load(yaml.serialize(node))
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
            text = text[: node.start_mark.index] + render_value(data) + text[node.end_mark.index:]
            continue
        entries = list(node.value)
        existing = next(((k, v) for k, v in entries if k.value == key), None)
        if existing is not None:
            start, end = _line_start(text, existing[0].start_mark.index), _entry_end(text, existing[1])
            indent = existing[0].start_mark.column
        else:
            last_value = entries[-1][1]
            start = end = _entry_end(text, last_value)
            indent = entries[-1][0].start_mark.column
            if start == len(text) and not text.endswith("\n"):
                text += "\n"
                start = end = len(text)
        line = "" if value is None else f"{' ' * indent}{key}: {render_value(value)}\n"
        if existing is not None and existing[0].start_mark.index != _line_start(text, existing[0].start_mark.index) \
                + indent:
            # the key shares its line with the list dash (`- prefix: ...`): keep what precedes it
            head = text[_line_start(text, existing[0].start_mark.index): existing[0].start_mark.index]
            line = head + line[indent:] if value is not None else head.rstrip() + "\n"
        text = text[:start] + line + text[end:]
    return text


def route_file_apply(*, path: Path, prefix: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Set keys of one route, validated by the proxy's loader before the file is replaced; returns the old values."""
    text = path.read_text(encoding="utf-8")
    before = route_values(text, prefix, list(changes), source=str(path))
    new_text = edit_route(text, prefix, changes, source=str(path))
    try:
        table = parse_route_text(new_text, source=str(path))
    except RouteFileError as exc:
        raise ActionFailed(f"route {prefix}: the edit would make the route file invalid, not written: {exc}") from exc
    after = route_values(new_text, prefix, list(changes), source=str(path))
    if after != {k: v for k, v in changes.items()}:
        raise ActionFailed(f"route {prefix}: edit did not take ({after} != {changes}), not written")
    del table
    file_write_atomic(path=path, data=new_text)
    return before


def route_entry_add(text: str, *, source: str, upstream: str, upstream_text: str, entry: str) -> str:
    """The text with one more upstream (`upstream: <upstream_text>`) and one more route (`entry`, rendered by the
    caller with {dash} and {indent} placeholders) after the last of each, in the file's own indentation."""
    root = yaml.compose(text)
    top = {key.value: value for key, value in root.value} if isinstance(root, yaml.MappingNode) else {}
    upstreams, routes = top.get("upstreams"), top.get("routes")
    if not isinstance(upstreams, yaml.MappingNode) or not upstreams.value or upstreams.flow_style:
        raise ActionFailed(f"{source}: upstreams is not a block mapping: add the upstream {upstream} by hand")
    if not isinstance(routes, yaml.SequenceNode) or not routes.value or routes.flow_style:
        raise ActionFailed(f"{source}: routes is not a block list: add the route by hand")
    if any(key.value == upstream for key, _ in upstreams.value):
        raise ActionFailed(f"{source}: upstream {upstream!r} exists already")
    last_key, last_value = upstreams.value[-1]
    upstream_at = _entry_end(text, last_value)
    upstream_line = f"{' ' * last_key.start_mark.column}{upstream}: {upstream_text}\n"
    last_route = routes.value[-1]
    column = last_route.start_mark.column
    route_at = _entry_end(text, last_route)
    route_text = entry.format(dash=" " * max(0, column - 2), indent=" " * column)
    for at, insert in sorted([(upstream_at, upstream_line), (route_at, route_text)], reverse=True):
        if at == len(text) and not text.endswith("\n"):
            text += "\n"
            at = len(text)
        text = text[:at] + insert + text[at:]
    return text
