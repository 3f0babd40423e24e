"""Inventory domain errors (the monolith's codes, so clients see the same error bodies)."""

from __future__ import annotations

from servicekit.errors import Conflict


class OutOfStock(Conflict):
    """Not enough available stock for one or more products; details name each short product."""

    code = "out_of_stock"
