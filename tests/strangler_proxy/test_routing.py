"""The pure routing core: path normalisation (security table), route choice, canary stickiness, overrides."""

from __future__ import annotations

import random

import pytest

from strangler_proxy.loader import parse_route_text
from strangler_proxy.murmur import in_canary
from strangler_proxy.override import override_token, verify_override
from strangler_proxy.routing import (
    PathRejected,
    RequestInfo,
    _normalize_in_full,
    client_address,
    decide,
    normalize_path,
    parse_cookie_header,
    sticky_cookie_wanted,
)

TABLE = parse_route_text(
    """\
upstreams:
  monolith: http://127.0.0.1:8000
  catalog: http://127.0.0.1:8001
  orders: http://127.0.0.1:8002
monolith: monolith
routes:
  - prefix: /api/
    mode: service
    service: orders
  - prefix: /api/products/
    mode: service
    service: catalog
    fallback: true
  - path: /api/products/
    mode: monolith
  - prefix: /api/products/
    methods: [post, PUT]
    mode: monolith
  - prefix: /api/orders/export/
    methods: [GET]
    mode: service
    service: catalog
  - prefix: /api/categories/
    mode: canary
    weight: 30
    service: catalog
  - prefix: /api/search/
    mode: shadow
    service: catalog
    shadow: {sample: 0.25}
  - prefix: /api/reviews/
    mode: shadow
    service: catalog
    shadow: {unsafe_methods: true}
  - prefix: /api/cart/
    mode: service
    service: orders
    shadow: {}
""",
    source="routes.yaml",
)
SECRET = "s3cret"


def request(method="GET", path="/", headers=None, cookies=None, client="10.0.0.1") -> RequestInfo:
    return RequestInfo(method=method, path=path, headers={k.lower(): v for k, v in (headers or {}).items()},
                       cookies=cookies or {}, client_addr=client)


def decision(*args, secret=SECRET, **kwargs):
    return decide(TABLE, request(*args, **kwargs), override_secret=secret)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/a//b", "/a/b"),
        ("//a///b//", "/a/b/"),
        ("/a/./b", "/a/b"),
        ("/a/b/..", "/a/"),
        ("/a/b/../c", "/a/c"),
        ("/a/.", "/a/"),
        ("/./", "/"),
        ("/a/%2e%2e/c", "/c"),
        ("/a/%2E%2e/c", "/c"),
        ("/a/.%2e/c", "/c"),
        ("/a/%2e/c", "/a/c"),
        ("/a/...", "/a/..."),
        ("/a/.b/..c", "/a/.b/..c"),
        ("/a?x=../../%2f&y=\\", "/a"),
        ("/a#frag/../..", "/a"),
        ("/%61pi/", "/api/"),
        ("/caf%C3%A9", "/café"),
        ("/a%252fb", "/a%2fb"),
        ("/a%3fb", "/a?b"),
        ("/a%20b", "/a b"),
    ],
)
def test_normalize_path(raw, normalised):
    assert normalize_path(raw) == normalised


def _full(raw: str) -> str | None:
    """The full normalisation alone (no fast path); None when it refuses the path."""
    try:
        return _normalize_in_full(raw.split("?")[0].split("#")[0], raw)
    except PathRejected:
        return None


@pytest.mark.parametrize("seed", range(20))
def test_fast_path_answers_what_the_full_normalisation_answers(seed):
    rng = random.Random(seed)
    pieces = ["/", "a", "api", ".", "..", "%2e", "%2F", "%41", "%", "\\", "\x00", "?", "#", "-", "~", "é", "%zz"]
    for _ in range(500):
        raw = "/" + "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 10)))
        try:
            got = normalize_path(raw)
        except PathRejected:
            got = None
        assert got == _full(raw), raw


def test_fast_path_takes_plain_paths_as_they_are():
    for raw in ("/api/products/1/", "/api/products/1/?page=2", "/", "/a-b_c~d/é"):
        assert normalize_path(raw) == raw.split("?")[0] == _full(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "/..",
        "/../etc/passwd",
        "/a/../..",
        "/a/../../x",
        "/%2e%2e/x",
        "/a/%2e%2e/%2e%2e/x",
        "/a%2fb",
        "/a%2Fb",
        "/api%2f..%2fadmin",
        "/a\\b",
        "/a%5cb",
        "/a%5C..%5Cb",
        "/a%00b",
        "/a%00",
        "/a%zz",
        "/a%2",
        "/a%",
        "http://evil.example/api/",
        "evil.example:443",
        "*",
        "",
    ],
)
def test_unsafe_paths_are_rejected(raw):
    with pytest.raises(PathRejected):
        normalize_path(raw)
    with pytest.raises(PathRejected):
        decide(TABLE, request(path=raw), override_secret=None)


def test_longest_prefix_wins():
    assert decision(path="/api/orders/1").primary == "orders"
    d = decision(path="/api/products/1")
    assert (d.route.prefix, d.primary) == ("/api/products/", "catalog")


def test_exact_beats_prefix_of_the_same_length_and_matches_only_itself():
    d = decision(path="/api/products/")
    assert (d.route.match, d.primary) == ("exact", "monolith")
    assert decision(path="/api/products/?page=2").route.match == "exact"
    assert decision(path="/api/products//").route.match == "exact"
    assert decision(path="/api/products/x").route.match == "prefix"


def test_method_routes_beat_any_method_routes_and_filtered_out_methods_use_the_next_prefix():
    assert decision("POST", "/api/products/1").primary == "monolith"
    assert decision("PUT", "/api/products/1").primary == "monolith"
    assert decision("PATCH", "/api/products/1").primary == "catalog"
    assert decision("GET", "/api/orders/export/1").primary == "catalog"
    d = decision("DELETE", "/api/orders/export/1")
    assert (d.route.prefix, d.primary) == ("/api/", "orders")


@pytest.mark.parametrize("method", ["get", "Get", "G ET", "GET\r\n", "", "X" * 40, "GËT"])
def test_malformed_methods_are_rejected_like_nginx_does(method):
    with pytest.raises(PathRejected, match="invalid method"):
        decide(TABLE, request(method=method, path="/"), override_secret=None)


def test_unmatched_goes_to_the_monolith():
    d = decision(path="/checkout/")
    assert (d.route, d.primary, d.route_label, d.shadow, d.fallback) == (None, "monolith", "default", None, None)
    assert decision(path="/API/orders/").route is None  # matching is case-sensitive, like nginx on Linux


def test_traversal_is_routed_by_the_normalised_path():
    d = decision(path="/api/products/../orders/1")
    assert (d.path, d.primary) == ("/api/orders/1", "orders")
    assert decision(path="/static/%2e%2e/api/products/9").primary == "catalog"


def test_fallback_only_for_safe_methods_away_from_the_monolith():
    assert decision("GET", "/api/products/1").fallback == "monolith"
    assert decision("HEAD", "/api/products/1").fallback == "monolith"
    assert decision("DELETE", "/api/products/1").fallback is None
    assert decision("GET", "/api/orders/1").fallback is None  # route without fallback


def test_canary_is_sticky_on_cookie_then_header_then_client_address():
    for i in range(200):
        by_cookie = decision(path="/api/categories/", cookies={"strangler_uid": f"u{i}"},
                             headers={"X-User-Id": "someone-else"}, client=f"10.0.{i}.1")
        assert by_cookie.primary == ("catalog" if in_canary(f"u{i}", 30) else "monolith")
        assert by_cookie.bucket is not None and (by_cookie.bucket < 3000) == (by_cookie.primary == "catalog")
        again = decision(path=f"/api/categories/{i}?x=1", cookies={"strangler_uid": f"u{i}"})
        assert again.primary == by_cookie.primary
        by_header = decision(path="/api/categories/", headers={"X-User-Id": f"h{i}"}, client="10.9.9.9")
        assert by_header.primary == ("catalog" if in_canary(f"h{i}", 30) else "monolith")
        by_addr = decision(path="/api/categories/", cookies={"strangler_uid": ""}, client=f"10.1.{i}.7")
        assert by_addr.primary == ("catalog" if in_canary(f"10.1.{i}.7", 30) else "monolith")
    sides = {decision(path="/api/categories/", cookies={"strangler_uid": f"u{i}"}).primary for i in range(200)}
    assert sides == {"catalog", "monolith"}


def test_shadow_candidates():
    d = decision("GET", "/api/search/?q=x")
    assert (d.primary, d.shadow) == ("monolith", "catalog")
    assert decision("POST", "/api/search/").shadow is None  # unsafe methods only when the route allows it
    assert decision("POST", "/api/reviews/").shadow == "catalog"
    assert decision("GET", "/api/cart/").shadow == "monolith"  # a service route shadows back to the monolith
    assert decision("GET", "/api/orders/").shadow is None


def test_signed_override_forces_the_upstream_and_drops_shadow_and_fallback():
    token = override_token(SECRET, "monolith")
    d = decision("GET", "/api/products/1", headers={"X-Strangler-Force": token})
    assert (d.primary, d.overridden, d.fallback, d.shadow) == ("monolith", True, None, None)
    assert d.route.prefix == "/api/products/"
    forced = decision("GET", "/nowhere", headers={"X-Strangler-Force": override_token(SECRET, "catalog")})
    assert (forced.primary, forced.route_label) == ("catalog", "default")


@pytest.mark.parametrize(
    ("value", "secret"),
    [
        ("catalog", SECRET),
        (override_token("other", "catalog"), SECRET),
        (override_token(SECRET, "catalog")[:-1] + "x", SECRET),
        (override_token(SECRET, "nosuch"), SECRET),
        (override_token(SECRET, "catalog"), None),
        (override_token(SECRET, "catalog"), ""),
        ("", SECRET),
    ],
)
def test_unsigned_or_bad_overrides_are_ignored(value, secret):
    d = decision("GET", "/api/search/", headers={"X-Strangler-Force": value}, secret=secret)
    assert (d.primary, d.overridden) == ("monolith", False)
    assert verify_override(secret, value, TABLE.upstreams, method="GET") is None


NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z, on an hour


def test_override_tokens_are_scoped_to_upstream_methods_and_time():
    safe = override_token("k", "catalog", methods="safe", ttl=1800, now=NOW + 60)
    version, upstream, methods, expiry, digest = safe.split(".")
    assert (version, upstream, methods, expiry, len(digest)) == ("v1", "catalog", "safe", "2027011509", 64)
    for method, expected in (("GET", "catalog"), ("HEAD", "catalog"), ("OPTIONS", "catalog"), ("POST", None),
                             ("DELETE", None)):
        assert verify_override("k", safe, ["catalog"], method=method, now=NOW + 120) == expected
    assert verify_override("k", safe, ["catalog"], method="GET", now=NOW + 3600) is None  # expired on the hour
    assert verify_override("k", safe, ["catalog"], method="GET", now=NOW + 3599) == "catalog"
    assert verify_override("k", safe, ["orders"], method="GET", now=NOW) is None
    writes = override_token("k", "catalog", methods="any", ttl=11 * 3600, now=NOW)
    assert verify_override("k", writes, ["catalog"], method="DELETE", now=NOW) == "catalog"
    # Forged scope: the signature covers upstream, methods and expiry.
    for forged in (safe.replace(".safe.", ".any."), safe.replace(".2027011509.", ".2027011510."),
                   safe.replace("v1.catalog.", "v1.orders.")):
        assert verify_override("k", forged, ["catalog", "orders"], method="GET", now=NOW) is None
    with pytest.raises(ValueError, match="within 12 hours"):
        override_token("k", "catalog", ttl=12 * 3600 + 1, now=NOW)


def test_override_tokens_are_compared_exactly():
    token = override_token("k", "catalog", now=NOW)
    for value in (token.upper(), token[:3] + token[3].upper() + token[4:], f"junk, {token}", f" {token}",
                  f"{token} , x", token + "\u00e9", "v1.catalog.any.2027011509.\u00e9\udcff", "catalog.\u00e9",
                  token[:-1]):
        assert verify_override("k", value, ["catalog"], method="GET", now=NOW) is None
    # Repeated headers arrive joined with ", ": the first element is the token, as nginx 1.22 reads the first line.
    for value in (token, f"{token}, {token}", f"{token}, junk", f"{token},junk"):
        assert verify_override("k", value, ["catalog"], method="GET", now=NOW) == "catalog"


def test_cookie_header_parsing_keeps_the_first_duplicate_like_nginx():
    assert parse_cookie_header("a=1; strangler_uid=x; strangler_uid=y;b") == {"a": "1", "strangler_uid": "x"}


PATTERNS = parse_route_text(
    """\
upstreams:
  monolith: http://127.0.0.1:8000
  catalog: http://127.0.0.1:8001
  reviews: http://127.0.0.1:8003
monolith: monolith
routes:
  - prefix: /api/products/
    mode: service
    service: catalog
  - pattern: /api/products/*/rating/
    mode: service
    service: reviews
  - prefix: /api/products/featured/rating/x
    mode: monolith
  - pattern: /a/*/
    mode: service
    service: reviews
  - prefix: /a/b/
    mode: service
    service: catalog
  - pattern: /v1.0/*/x
    mode: service
    service: catalog
""",
    source="patterns.yaml",
)


@pytest.mark.parametrize(
    ("path", "upstream", "label"),
    [
        ("/api/products/7/rating/", "reviews", "/api/products/*/rating/"),
        ("/api/products/7/rating/votes?x=1", "reviews", "/api/products/*/rating/"),
        ("/api/products/7/ratings", "catalog", "/api/products/"),
        ("/api/products//rating/", "catalog", "/api/products/"),  # `*` is one non-empty segment
        ("/api/products/a/b/rating/", "catalog", "/api/products/"),
        ("/api/products/featured/rating/x1", "monolith", "/api/products/featured/rating/x"),  # longer prefix wins
        ("/a/b/c", "catalog", "/a/b/"),  # same length: a literal prefix beats a pattern
        ("/a/c/d", "reviews", "/a/*/"),
        ("/v1.0/q/x", "catalog", "/v1.0/*/x"),
        ("/v1X0/q/x", "monolith", "default"),  # the dot is literal
    ],
)
def test_pattern_routes(path, upstream, label):
    d = decide(PATTERNS, request(path=path), override_secret=None)
    assert (d.primary, d.route_label) == (upstream, label)


def test_first_request_keys_on_the_fresh_id_it_sets_as_the_cookie():
    for i in range(100):
        uid = f"{i:032x}"
        first = decide(TABLE, RequestInfo(method="GET", path="/api/categories/", client_addr="10.0.0.1", fresh_uid=uid),
                       override_secret=None)
        assert first.primary == ("catalog" if in_canary(uid, 30) else "monolith")
        again = decide(TABLE, RequestInfo(method="GET", path="/api/categories/", cookies={"strangler_uid": uid},
                                          client_addr="10.0.0.2"), override_secret=None)
        assert again.primary == first.primary
    assert sticky_cookie_wanted(TABLE, cookies={}, headers={})
    assert not sticky_cookie_wanted(TABLE, cookies={"strangler_uid": "u1"}, headers={})
    assert not sticky_cookie_wanted(TABLE, cookies={}, headers={"x-user-id": "h1"})


@pytest.mark.parametrize(("peer", "forwarded", "client"), [
    ("203.0.113.9", "198.18.0.1", "203.0.113.9"),  # an untrusted peer's header is not believed
    ("10.0.0.5", "198.18.0.1", "198.18.0.1"),
    ("10.0.0.5", "6.6.6.6, 198.18.0.1, 10.0.0.7", "198.18.0.1"),  # recursive: skip trusted, stop at the client
    ("10.0.0.5", "10.0.0.8, 10.0.0.7", "10.0.0.8"),  # all trusted: the leftmost
    ("10.0.0.5", "junk", "10.0.0.5"),  # nothing usable: the peer
    ("10.0.0.5", "junk, 10.0.0.7", "10.0.0.7"),  # the walk ends at what is not an address
    ("10.0.0.5", None, "10.0.0.5"),
    ("::ffff:10.0.0.5", "198.18.0.1", "198.18.0.1"),
])
def test_client_address_follows_nginx_real_ip_recursive(peer, forwarded, client):
    assert client_address(peer, forwarded, ("10.0.0.0/8",)) == client
    assert client_address(peer, forwarded, ()) == peer
