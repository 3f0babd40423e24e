"""The verify token a test run shares with the projects it runs or starts (tests/conftest.py sets it)."""

from __future__ import annotations

import os

from strangler_sync.verify import VERIFY_TOKEN_ENV


def verify_headers() -> dict[str, str]:
    """What a caller of /sync/checksums/ sends."""
    return {"Authorization": f"Bearer {os.environ[VERIFY_TOKEN_ENV]}"}
