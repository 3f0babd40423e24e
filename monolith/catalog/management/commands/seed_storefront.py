"""manage.py seed_storefront: fill an empty catalog with deterministic demo data (see catalog.seeding)."""

from django.core.management.base import BaseCommand, CommandError

from monolith.catalog.models import Product
from monolith.catalog.seeding import storefront_seed
from servicekit.errors import DomainError


class Command(BaseCommand):
    help = "Seed categories, products with stock, users user1..userN (password 'password'), admin/admin and reviews."

    def add_arguments(self, parser):
        parser.add_argument("--products", type=int, default=1000)
        parser.add_argument("--users", type=int, default=10)
        parser.add_argument("--seed", type=int, default=0, help="same seed on an empty catalog gives the same rows")
        parser.add_argument("--batch-size", type=int, default=2000)
        parser.add_argument("--if-empty", action="store_true", help="do nothing when products already exist")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, products, users, seed, batch_size, if_empty, no_progress, **options):
        if if_empty and Product.objects.exists():
            self.stdout.write("seed_storefront: products already exist; nothing to do (--if-empty)")
            return
        try:
            result = storefront_seed(
                products=products, users=users, seed=seed, batch_size=batch_size, progress=not no_progress
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"seed_storefront: {result.products} products, {result.stock_items} stock rows, {result.users} users "
            f"(+ admin), {result.reviews} reviews, {result.categories} categories in {result.seconds:.1f}s"
        )
