"""Bearer-token authentication for other services (the monolith's checkout) writing stock: they act as staff."""

from __future__ import annotations

from servicekit.service_token import ServiceTokenAuthentication as _ServiceTokenAuthentication

from .conf import inventory_setting


class ServiceTokenAuthentication(_ServiceTokenAuthentication):
    """`Authorization: Bearer <token>` where the token is one of INVENTORY["API_TOKENS"]."""

    def tokens(self) -> list[str]:
        return inventory_setting("API_TOKENS")
