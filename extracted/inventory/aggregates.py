"""The inventory service's stock aggregate: the storefront contract (``extracted.events``) bound to its model,
with the same canonical fields as the monolith's, so verify compares equal rows."""

from extracted import events

STOCK = events.STOCK.bind(
    model="inventory_service.StockItem",
    fields=["product_id", "quantity_on_hand", "quantity_reserved"],
)
