"""Inventory service app (label `inventory_service`): stock per product and reservations, the monolith's ids."""
