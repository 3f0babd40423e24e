"""Orders domain errors."""

from __future__ import annotations

from servicekit.errors import Conflict, InvalidInput


class CartEmpty(InvalidInput):
    code = "cart_empty"


class ProductUnavailable(InvalidInput):
    code = "product_unavailable"


class PriceChanged(Conflict):
    """Prices moved since the customer saw them; the cart now carries the new prices, so they can re-confirm."""

    code = "price_changed"


class IllegalTransition(Conflict):
    code = "illegal_transition"
