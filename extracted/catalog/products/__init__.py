"""Catalog service app (label `catalog_service`): categories and products, same ids as the monolith."""
