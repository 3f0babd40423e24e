"""Inventory bounded context: stock per product and reservations made at checkout."""
