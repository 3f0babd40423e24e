"""response_from_fetched: the answer copied from a checked template is the one http.Response() would build."""

from __future__ import annotations

import pytest
from mitmproxy import http

from strangler_proxy.diffing import HttpResponseData
from strangler_proxy.responses import response_from_fetched

PAIRS = [("Content-Type", "application/json"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"),
         ("Connection", "keep-alive"), ("Content-Length", "2"), ("X-Odd", "caf\xe9")]


def _fetched(*, status: int = 201, body: bytes = b"{}", reason: str = "Created") -> HttpResponseData:
    return HttpResponseData.from_pairs(status=status, reason=reason, header_pairs=PAIRS, body=body)


def _checked(fetched: HttpResponseData, *, head: bool, at: float) -> http.Response:
    """What http.Response() builds, with mitmproxy's own type checks, from the same pieces."""
    pairs = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in fetched.header_pairs
             if k.lower() not in ("connection",) and (head or k.lower() != "content-length")]
    if not head:
        pairs.append((b"Content-Length", str(len(fetched.body)).encode()))
    return http.Response(b"HTTP/1.1", fetched.status, fetched.reason.encode("latin-1"), http.Headers(pairs),
                         fetched.body, None, at, at)


@pytest.mark.parametrize("head", [False, True])
def test_same_state_as_a_checked_response(head):
    fetched = _fetched(body=b"" if head else b"{}")
    response = response_from_fetched(fetched, head=head)
    expected = _checked(fetched, head=head, at=response.timestamp_start).get_state()
    assert response.get_state() == expected
    assert response.headers.get_all("set-cookie") == ["a=1", "b=2"]
    assert "connection" not in response.headers


def test_answers_share_nothing_they_change():
    first = response_from_fetched(_fetched(status=200, body=b"one"), head=False)
    second = response_from_fetched(_fetched(status=503, body=b"two!", reason="Service Unavailable"), head=False)
    first.headers["X-Mine"] = "1"
    first.content = b"changed"
    assert (second.status_code, second.reason, second.raw_content) == (503, "Service Unavailable", b"two!")
    assert "x-mine" not in second.headers and second.headers["content-length"] == "4"
    assert response_from_fetched(_fetched(status=200, body=b"one"), head=False).raw_content == b"one"


@pytest.mark.parametrize("fetched", [
    HttpResponseData(status="200", headers={}, body=b""),  # type: ignore[arg-type]
    HttpResponseData(status=200, headers={}, body="text"),  # type: ignore[arg-type]
])
def test_wrong_types_are_refused_as_the_skipped_check_would(fetched):
    with pytest.raises(TypeError):
        response_from_fetched(fetched, head=False)
