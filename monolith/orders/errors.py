"""Orders domain errors."""

from __future__ import annotations

from servicekit.errors import Conflict


class CartEmpty(Conflict):  # the request is fine; the cart's state refuses it
    code = "cart_empty"


class ProductUnavailable(Conflict):
    code = "product_unavailable"


class PriceChanged(Conflict):
    """Prices moved since the customer saw them; the cart now carries the new prices, so they can re-confirm."""

    code = "price_changed"


class IllegalTransition(Conflict):
    code = "illegal_transition"
