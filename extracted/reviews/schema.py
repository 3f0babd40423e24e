"""OpenAPI preprocessing: the schema documents the public API only (/api/...), not ops or sync endpoints."""

from __future__ import annotations


def public_api_only(endpoints: list[tuple], **kwargs) -> list[tuple]:
    """drf-spectacular PREPROCESSING_HOOKS entry: keep endpoints whose path starts with /api/."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/api/")]
