"""Where the service's database comes from, and proof that CI's PostgreSQL pass really runs this suite there."""

from __future__ import annotations

import pytest
from django.db import connection

from servicekit import env
from servicekit.service_settings import service_database


@pytest.mark.parametrize(
    ("environ", "engine", "name"),
    [
        ({"CATALOG_DATABASE_URL": "postgres://u@db:5432/catalog", "DATABASE_URL": "postgres://u@db:5432/shop"},
         "django.db.backends.postgresql", "catalog"),
        ({"DATABASE_URL": "postgres://u@db:5432/shop"}, "django.db.backends.postgresql", "shop_catalog"),
        ({"DATABASE_URL": "sqlite:////tmp/monolith.sqlite3"}, "django.db.backends.sqlite3", "catalog.sqlite3"),
        ({}, "django.db.backends.sqlite3", "catalog.sqlite3"),
    ],
)  # fmt: skip
def test_database_choice(monkeypatch, tmp_path, environ, engine, name):
    monkeypatch.delenv("CATALOG_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr(env, "VAR_DIR", tmp_path)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    config = service_database(project="catalog", var_name="CATALOG_DATABASE_URL")
    assert config["ENGINE"] == engine
    assert str(config["NAME"]).endswith(name)


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_suite_runs_on_its_own_postgresql_database():
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        (name,) = cursor.fetchone()
    # test_<monolith's database>_catalog, plus the session's suffix when dev.py runs sessions side by side
    assert name.startswith("test_") and "_catalog" in name and connection.settings_dict["NAME"] == name, name


@pytest.mark.postgres
@pytest.mark.django_db
def test_text_search_uses_the_trigram_index_on_postgresql(catalog):
    from extracted.catalog.products.models import Product

    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'catalog_service_product'")
        indexes = {row[0] for row in cursor.fetchall()}
        assert {"catalog_service_product_name_trgm", "catalog_service_product_description_trgm"} <= indexes
        # five rows: the planner would rather scan; leave it only bitmap scans, which need a matching index
        for setting in ("enable_seqscan", "enable_indexscan", "enable_indexonlyscan"):
            cursor.execute(f"SET LOCAL {setting} = off")
        plan = Product.objects.filter(name__icontains="novel").explain()  # the SQL selectors' q= builds
    assert "trgm" in plan, plan
