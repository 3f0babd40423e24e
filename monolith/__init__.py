"""The Django storefront being migrated: catalog, cart, checkout, orders, inventory, reviews, accounts."""

from monolith.celery import app as celery_app

__all__ = ["celery_app"]
