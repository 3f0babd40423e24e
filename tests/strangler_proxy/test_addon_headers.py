"""The addon's raw-field header helpers give exactly what mitmproxy's Headers API gives (they replace it for speed)."""

from __future__ import annotations

import random

import pytest
from mitmproxy import http

from strangler_proxy.fetch import HOP_BY_HOP
from strangler_proxy.header_fields import (
    INTERNAL_HEADERS,
    dropped_names,
    fields_rewritten,
    folded_headers,
    folded_value,
    without_hop_by_hop,
)

CASES = [
    [],
    [(b"Host", b"localhost:8080")],
    [(b"Host", b"a"), (b"X-Request-ID", b"one"), (b"x-request-id", b"two"), (b"Accept", b"*/*")],
    [(b"Connection", b"keep-alive, X-Secret-Hop"), (b"X-Secret-Hop", b"1"), (b"Keep-Alive", b"timeout=5"),
     (b"TE", b"trailers"), (b"Proxy-Authorization", b"Basic eA=="), (b"Accept", b"application/json")],
    [(b"X-Forwarded-For", b"10.0.0.1"), (b"Cookie", b"a=1"), (b"X-Forwarded-For", b"10.0.0.2"),
     (b"cookie", b"b=2"), (b"X-Strangler-Force", b"tok"), (b"X-Strangler-Shadow", b"1")],
    [(b"connection", b"close"), (b"CONNECTION", b"X-Forwarded-Host"), (b"X-Forwarded-Host", b"evil"),
     (b"X-Forwarded-Proto", b"https"), (b"X-Strangler-Mirror-Route", b"/x"), (b"Caf\xc3\xa9", b"cr\xe8me")],
]


def _random_fields(rng: random.Random) -> list[tuple[bytes, bytes]]:
    names = [b"Host", b"X-Request-ID", b"x-forwarded-for", b"Connection", b"Keep-Alive", b"Upgrade", b"Accept",
             b"X-Strangler-Force", b"X-Strangler-Shadow", b"X-Forwarded-Proto", b"Cookie", b"X-Custom"]
    values = [b"", b"1", b"a, b", b"X-Custom", b"keep-alive, x-custom", b"close", b"upgrade"]
    return [(rng.choice(names), rng.choice(values)) for _ in range(rng.randrange(0, 9))]


ALL_CASES = CASES + [_random_fields(random.Random(seed)) for seed in range(200)]


def _old_strip(headers: http.Headers) -> None:
    """The addon's previous Headers-based stripping, kept here as the reference."""
    present = {name.lower() for name in headers.keys()}
    doomed = present & HOP_BY_HOP
    if "connection" in present:
        named = {token.strip().lower() for value in headers.get_all("connection") for token in value.split(",")}
        doomed |= present & named
    for name in doomed:
        del headers[name]


@pytest.mark.parametrize("fields", ALL_CASES)
def test_raw_field_helpers_match_the_headers_api(fields):
    fields = tuple(fields)
    reference = http.Headers(list(fields))
    assert folded_value(fields, b"x-request-id") == reference.get("X-Request-ID")

    _old_strip(reference)
    stripped = without_hop_by_hop(fields)
    assert stripped == reference.fields
    assert folded_headers(stripped) == {k.lower(): v for k, v in reference.items()}

    override = "X-Strangler-Force"
    reference.pop(override, None)
    for internal in INTERNAL_HEADERS:
        reference.pop(internal, None)
    set_to = [("X-Request-ID", "rid"), ("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Host", "h"),
              ("X-Forwarded-Proto", "http")]
    for name, value in set_to:
        reference[name] = value
    assert fields_rewritten(stripped, drop=dropped_names(override), set_to=set_to) == reference.fields
