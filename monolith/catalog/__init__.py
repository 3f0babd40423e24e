"""Catalog bounded context: categories and products."""
