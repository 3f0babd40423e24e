"""PostgreSQL only: the monolith's trigram indexes for text search (icontains on name/SKU/description), so the
service answers ?q= as fast as the monolith. Skipped on other databases, and where pg_trgm cannot be
created (no privilege): search then still works, just by scanning."""

from django.db import DatabaseError, migrations, transaction

# Django's icontains on PostgreSQL compiles to UPPER("column"::text) LIKE UPPER(%s); the indexes match that.
TRIGRAM_INDEXES = {
    "catalog_service_product_name_trgm": 'UPPER(("name")::text)',
    "catalog_service_product_sku_trgm": 'UPPER(("sku")::text)',
    "catalog_service_product_description_trgm": 'UPPER(("description")::text)',
}


def create_trigram_indexes(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        try:
            with transaction.atomic(using=connection.alias):  # a savepoint: a refusal must not abort the migration
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except DatabaseError:
            return
        for name, expression in TRIGRAM_INDEXES.items():
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS {name} ON catalog_service_product USING gin ({expression} gin_trgm_ops)"
            )


def drop_trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for name in TRIGRAM_INDEXES:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):

    dependencies = [
        ("catalog_service", "0002_product_ordering_indexes"),
    ]

    operations = [
        migrations.RunPython(create_trigram_indexes, drop_trigram_indexes),
    ]
