"""Inventory domain errors."""

from __future__ import annotations

from servicekit.errors import Conflict


class OutOfStock(Conflict):
    """Not enough available stock for one or more products; details name each short product."""

    code = "out_of_stock"
