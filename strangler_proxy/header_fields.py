"""Raw header fields (mitmproxy's ``Headers.fields``: a tuple of ``(name, value)`` bytes pairs), read and rewritten
in a few passes.

The addon works on raw fields because every ``Headers`` lookup or assignment scans and rebuilds the whole tuple,
and a dozen of them per request cost more than the rest of its request hook (measured with bench/proxy_bench.py).
Each helper answers exactly what the ``Headers`` API would (tests/strangler_proxy/test_addon_headers.py).
"""

from __future__ import annotations

import functools

from servicekit.write_positions import READ_AFTER_HEADER
from strangler_proxy.fetch import HOP_BY_HOP
from strangler_proxy.shadow import SHADOW_HEADER
from strangler_proxy.spec import MIRROR_PRIMARY_HEADER, MIRROR_ROUTE_HEADER, MIRROR_SHADOW_HEADER

# Only the proxy says these: a client's are dropped (a forged read-after would only get that client 409s).
INTERNAL_HEADERS = (SHADOW_HEADER, MIRROR_ROUTE_HEADER, MIRROR_PRIMARY_HEADER, MIRROR_SHADOW_HEADER, READ_AFTER_HEADER)

HOP_BY_HOP_NAMES = frozenset(name.encode() for name in HOP_BY_HOP)


def field_text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")  # as mitmproxy's Headers decode


def field_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def folded_value(fields, lowered_name: bytes) -> str | None:
    """What ``Headers.get`` answers: the values of that header joined with ", ", or None when absent."""
    values = [value for name, value in fields if name.lower() == lowered_name]
    return field_text(b", ".join(values)) if values else None


def folded_headers(fields) -> dict[str, str]:
    """Lowercased name -> folded value, for every header (what routing.decide reads)."""
    headers: dict[str, str] = {}
    for name, value in fields:
        key, text = field_text(name.lower()), field_text(value)
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def without_hop_by_hop(fields) -> tuple:
    """The fields minus hop-by-hop headers and the headers the Connection header names."""
    doomed = HOP_BY_HOP_NAMES
    for name, value in fields:
        if name.lower() == b"connection":
            doomed = doomed | {token.strip().lower() for token in value.split(b",")}
    return tuple(field for field in fields if field[0].lower() not in doomed)


BODYLESS_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"DELETE"})  # framed only when they carry a body


@functools.lru_cache(maxsize=64)
def dropped_names(override_header: str, framed: bool = False, *proxy_only: str) -> frozenset[bytes]:
    # The override header, signed or not, never reaches an upstream; only the proxy may say a request is a
    # shadow or mirror copy. Content-Length is set anew when the request is framed, dropped when it is not.
    # `proxy_only`: more headers only the proxy sets (the signed identity), never taken from a client.
    names = (override_header, *INTERNAL_HEADERS, *proxy_only) + (() if framed else ("Content-Length",))
    return frozenset(field_bytes(name.lower()) for name in names)


@functools.lru_cache(maxsize=256)
def name_key(name: str) -> tuple[bytes, bytes]:
    """(lowercased, as given) raw bytes of a header name: the few names the addon sets, encoded once."""
    return field_bytes(name.lower()), field_bytes(name)


def fields_rewritten(fields, *, drop: frozenset[bytes], set_to) -> tuple:
    """The fields without the ``drop`` names and with each ``(name, value)`` of ``set_to`` set as
    ``Headers.__setitem__`` would: the first field of that name keeps its place and takes the value, later
    ones go, and a name not present is appended (in ``set_to`` order)."""
    pending = {}
    for name, value in set_to:
        lowered, raw_name = name_key(name)
        pending[lowered] = (raw_name, value)
    out = []
    for name, value in fields:
        lowered = name.lower()
        if lowered in drop:
            continue
        if lowered in pending:
            out.append((name, field_bytes(pending.pop(lowered)[1])))
            drop = drop | {lowered}  # later fields of that name go
            continue
        out.append((name, value))
    out += [(raw_name, field_bytes(value)) for raw_name, value in pending.values()]
    return tuple(out)
