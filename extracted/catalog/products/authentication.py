"""Bearer-token authentication for other services writing to the catalog (they act as staff)."""

from __future__ import annotations

from servicekit.service_token import ServiceTokenAuthentication as _ServiceTokenAuthentication

from .conf import catalog_setting


class ServiceTokenAuthentication(_ServiceTokenAuthentication):
    """`Authorization: Bearer <token>` where the token is one of CATALOG_SERVICE["API_TOKENS"]."""

    def tokens(self) -> list[str]:
        return catalog_setting("API_TOKENS")
