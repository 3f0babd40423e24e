"""Write positions on the wire: what an owner's write emitted, what a follower must have applied to answer a read.

A position is one aggregate's version, ``(aggregate_type, aggregate_id, version)``, as strangler_sync issues it.
Both headers carry a comma-separated list of ``type:id:version`` items, each part percent-encoded (ids may hold
anything but are short). Shared by strangler_sync (the Django side: the owner says what it wrote, the follower
checks what it applied) and strangler_proxy (carries them from one to the other in a signed cookie).

- ``X-Strangler-Written`` (owner -> proxy, on the answer of a write that emitted events): the positions, or
  ``many`` when the write emitted more than ``MAX_POSITIONS`` (the proxy then pins the client to the owner for
  a while instead of tracking them).
- ``X-Strangler-Read-After`` (proxy -> follower on a read; follower -> proxy on its answer): the request carries
  the positions the answer must include; the follower answers ``ok`` (it has applied them all: the answer is
  fresh) or ``behind`` (status 409, nothing else done: the proxy asks the owner).
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import quote, unquote

WRITTEN_HEADER = "X-Strangler-Written"
READ_AFTER_HEADER = "X-Strangler-Read-After"
WRITTEN_MANY = "many"
READ_AFTER_OK = "ok"
READ_AFTER_BEHIND = "behind"
MAX_POSITIONS = 16  # positions one header (and the proxy's cookie) carries at most


class Position(NamedTuple):
    aggregate_type: str
    aggregate_id: str
    version: int


class PositionsInvalid(ValueError):
    """A positions header that does not parse."""


def positions_format(positions) -> str:
    return ",".join(f"{quote(p.aggregate_type, safe='')}:{quote(p.aggregate_id, safe='')}:{int(p.version)}"
                    for p in positions)


def positions_parse(value: str) -> list[Position]:
    """The positions of a header value; PositionsInvalid for anything malformed or over MAX_POSITIONS."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    if len(items) > MAX_POSITIONS:
        raise PositionsInvalid(f"more than {MAX_POSITIONS} positions")
    positions = []
    for item in items:
        parts = item.split(":")
        if len(parts) != 3 or not parts[2].isdigit() or not parts[0] or not parts[1]:
            raise PositionsInvalid(f"malformed position {item[:80]!r}")
        positions.append(Position(unquote(parts[0]), unquote(parts[1]), int(parts[2])))
    return positions


def positions_merge(*groups) -> list[Position]:
    """One position per aggregate (the highest version), newest groups last; at most MAX_POSITIONS, the newest."""
    merged: dict[tuple[str, str], Position] = {}
    for group in groups:
        for p in group:
            key = (p.aggregate_type, p.aggregate_id)
            old = merged.pop(key, None)
            merged[key] = p if old is None or p.version >= old.version else old
    return list(merged.values())[-MAX_POSITIONS:]
