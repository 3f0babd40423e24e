"""Hostile inputs shared by every project's bad-input tests (issue 11): each must be a 4xx JSON error, never a 500."""

from __future__ import annotations

HUGE = "99999999999999999999999"  # past 2**63-1: SQLite raised OverflowError, PostgreSQL "bigint out of range"
DEEP_JSON = b"[" * 5000 + b"]" * 5000  # json.load raised RecursionError
DEEP_OBJECT = ('{"a":' * 100 + "1" + "}" * 100).encode()  # parses, but deeper than any API takes
INVALID_UTF8 = b'{"title": "\xff\xfe", "rating": 3}'


def assert_json_error(response, status: int, code: str | None = None) -> dict:
    """The answer is the one JSON error shape with this status (and code)."""
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    if code is not None:
        assert error["code"] == code, error
    return error
