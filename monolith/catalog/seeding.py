"""Deterministic demo/benchmark data: a category tree, products with stock, users, an admin and reviews.

Same (products, users, seed) on an empty catalog gives the same rows every time: all randomness comes
from random.Random(seed) and every timestamp is derived from a fixed base. Rows are bulk-inserted in
batches (no per-row services), so 100,000 products take seconds, not minutes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import connection, models, transaction
from django.utils.text import slugify
from tqdm import tqdm

from monolith.catalog.models import Category, Product
from monolith.inventory.models import StockItem
from monolith.reviews.models import Review
from servicekit.errors import Conflict, InvalidInput

SEED_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
USER_PASSWORD = "password"
ADMIN_USERNAME = ADMIN_PASSWORD = "admin"

# top-level category -> (subcategories, product nouns)
CATEGORY_TREE: dict[str, tuple[list[str], list[str]]] = {
    "Books": (["Fiction", "Science", "Children"], ["Novel", "Guide", "Atlas", "Cookbook", "Anthology", "Handbook"]),
    "Electronics": (["Phones", "Laptops", "Audio"], ["Headphones", "Charger", "Speaker", "Tablet", "Cable", "Monitor"]),
    "Home & Kitchen": (["Cookware", "Furniture", "Lighting"], ["Pan", "Kettle", "Lamp", "Chair", "Shelf", "Mug"]),
    "Garden": (["Tools", "Plants"], ["Trowel", "Planter", "Hose", "Rake", "Seed Kit", "Bench"]),
    "Sports": (["Running", "Cycling", "Camping"], ["Jacket", "Bottle", "Helmet", "Tent", "Backpack", "Shoes"]),
    "Toys": (["Puzzles", "Building"], ["Puzzle", "Blocks", "Robot", "Kite", "Board Game", "Train Set"]),
}
ADJECTIVES = ["Classic", "Compact", "Deluxe", "Eco", "Essential", "Handy", "Light", "Modern", "Pro", "Rugged",
              "Smart", "Sturdy", "Travel", "Ultra", "Vintage", "Wireless"]  # fmt: skip
COLOURS = ["Amber", "Black", "Blue", "Copper", "Green", "Grey", "Ivory", "Olive", "Red", "Sand", "Teal", "White"]
REVIEW_TITLES = {1: ["Disappointed", "Broke quickly"], 2: ["Not great", "Meh"], 3: ["Okay", "Does the job"],
                 4: ["Good value", "Pretty good"], 5: ["Excellent", "Love it"]}  # fmt: skip
PLACEHOLDER_IMAGES = 6  # monolith/static/storefront/img/placeholder-<n>.svg


@dataclass(frozen=True)
class SeedResult:
    categories: int
    products: int
    stock_items: int
    users: int
    reviews: int
    seconds: float


@contextmanager
def _explicit_timestamps(*model_classes: type[models.Model]) -> Iterator[None]:
    """Let bulk inserts keep the timestamps we set (auto_now/auto_now_add would stamp 'now' on every row)."""
    saved = []
    for model in model_classes:
        for field in model._meta.concrete_fields:
            if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                saved.append((field, field.auto_now, field.auto_now_add))
                field.auto_now = field.auto_now_add = False
    try:
        yield
    finally:
        for field, auto_now, auto_now_add in saved:
            field.auto_now, field.auto_now_add = auto_now, auto_now_add


def _batches(items: Iterator, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _seed_categories() -> dict[str, tuple[Category, list[str]]]:
    """{leaf slug: (leaf category, nouns)}; existing categories with the same slug are reused."""
    existing = {c.slug: c for c in Category.objects.all()}
    leaves: dict[str, tuple[Category, list[str]]] = {}
    for position, (top_name, (sub_names, nouns)) in enumerate(CATEGORY_TREE.items()):
        stamp = SEED_EPOCH + timedelta(seconds=position)
        top = existing.get(slugify(top_name)) or Category.objects.create(
            name=top_name, slug=slugify(top_name), description=f"All {top_name.lower()}.", created_at=stamp,
            updated_at=stamp,
        )  # fmt: skip
        for sub_name in sub_names:
            slug = slugify(f"{top_name} {sub_name}")
            sub = existing.get(slug) or Category.objects.create(
                name=sub_name, slug=slug, parent=top, description=f"{sub_name} in {top_name.lower()}.",
                created_at=stamp, updated_at=stamp,
            )  # fmt: skip
            leaves[slug] = (sub, nouns)
    return leaves


def _product_rows(rng: random.Random, count: int, leaves: dict[str, tuple[Category, list[str]]]) -> Iterator[Product]:
    leaf_list = [leaves[slug] for slug in sorted(leaves)]
    for number in range(1, count + 1):
        category, nouns = rng.choice(leaf_list)
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(COLOURS)} {rng.choice(nouns)}"
        stamp = SEED_EPOCH + timedelta(minutes=number)
        yield Product(
            sku=f"SKU-{number:07d}",
            slug=f"{slugify(name)}-{number}",
            name=name,
            description=f"{name}. Part of our {category.name.lower()} range; model {number}.",
            price=Decimal(rng.randint(199, 49_999)) / 100,
            currency="USD",
            is_active=rng.random() >= 0.02,
            images=[f"/static/storefront/img/placeholder-{rng.randrange(PLACEHOLDER_IMAGES)}.svg"],
            category=category,
            created_at=stamp,
            updated_at=stamp,
        )


def _seed_users(*, count: int, seed: int) -> list:
    """user1..userN (password 'password') and the 'admin' superuser; existing usernames are kept as they are."""
    user_model = get_user_model()
    # One hash for everybody: hashing 100k passwords one by one would take hours (PBKDF2 is slow on purpose).
    user_hash = make_password(USER_PASSWORD, salt=f"seedusers{seed}")
    wanted = [f"user{n}" for n in range(1, count + 1)]
    existing = set(user_model.objects.filter(username__in=wanted).values_list("username", flat=True))
    new_users = [
        user_model(
            username=username, email=f"{username}@example.com", password=user_hash,
            date_joined=SEED_EPOCH + timedelta(seconds=n),
        )  # fmt: skip
        for n, username in enumerate(wanted, start=1)
        if username not in existing
    ]
    user_model.objects.bulk_create(new_users, batch_size=2000)
    if not user_model.objects.filter(username=ADMIN_USERNAME).exists():
        user_model.objects.create(
            username=ADMIN_USERNAME, email="admin@example.com", is_staff=True, is_superuser=True,
            password=make_password(ADMIN_PASSWORD, salt=f"seedadmin{seed}"), date_joined=SEED_EPOCH,
        )  # fmt: skip
    return list(user_model.objects.filter(username__in=wanted).order_by("id"))


def _refresh_planner_statistics(*model_classes: type[models.Model]) -> None:
    """ANALYZE the freshly filled tables: without statistics the planner guesses (PostgreSQL's autovacuum
    would get there eventually; SQLite never does on its own)."""
    with connection.cursor() as cursor:
        for model in model_classes:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def storefront_seed(
    *, products: int, users: int, seed: int = 0, batch_size: int = 2000, progress: bool = False
) -> SeedResult:
    """Fill an empty catalog. Conflict when products already exist (nothing is written then)."""
    if products < 0 or users < 0 or batch_size < 1:
        raise InvalidInput("products and users must be >= 0 and batch_size >= 1.")
    started = time.perf_counter()
    rng = random.Random(seed)
    with transaction.atomic(), _explicit_timestamps(Category, Product, StockItem, Review):
        if Product.objects.exists():
            raise Conflict("The catalog already has products; seed only an empty one.")
        leaves = _seed_categories()
        seeded_users = _seed_users(count=users, seed=seed)
        product_count = stock_count = review_count = 0
        bar = tqdm(total=products, unit="product", desc="seeding", disable=not progress)
        for batch in _batches(_product_rows(rng, products, leaves), batch_size):
            Product.objects.bulk_create(batch)  # sets pks (RETURNING on PostgreSQL and SQLite >= 3.35)
            stock = [
                StockItem(product_id=p.id, quantity_on_hand=0 if rng.random() < 0.05 else rng.randint(1, 250),
                          updated_at=p.created_at)
                for p in batch
            ]  # fmt: skip
            StockItem.objects.bulk_create(stock)
            reviews = []
            for product in batch:
                if not seeded_users or not product.is_active or rng.random() >= 0.3:
                    continue
                for offset, user in enumerate(rng.sample(seeded_users, rng.randint(1, min(5, len(seeded_users))))):
                    rating = rng.choices([1, 2, 3, 4, 5], weights=[1, 1, 2, 4, 4])[0]
                    stamp = product.created_at + timedelta(days=1 + offset)
                    reviews.append(Review(
                        product_id=product.id, user_id=user.id, rating=rating,
                        title=rng.choice(REVIEW_TITLES[rating]), body=f"{rating} stars for the {product.name}.",
                        created_at=stamp, updated_at=stamp,
                    ))  # fmt: skip
            Review.objects.bulk_create(reviews)
            product_count += len(batch)
            stock_count += len(stock)
            review_count += len(reviews)
            bar.update(len(batch))
        bar.close()
    _refresh_planner_statistics(Category, Product, StockItem, Review, get_user_model())
    return SeedResult(
        categories=Category.objects.count(),
        products=product_count,
        stock_items=stock_count,
        users=len(seeded_users),
        reviews=review_count,
        seconds=round(time.perf_counter() - started, 2),
    )
