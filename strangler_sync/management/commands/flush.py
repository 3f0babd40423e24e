"""``manage.py flush`` that empties the tables without capturing: Django's flush, under the applying marker.

On PostgreSQL flush is a ``TRUNCATE``, which fires no row trigger; on SQLite it is a ``DELETE FROM`` per
table, in no fixed order, so an automatic aggregate's delete triggers would write a ``deleted`` event per row
into an outbox that may already be empty (rows left behind for whatever runs next, e.g. the next
``TransactionTestCase``). Emptying the database is no change of an aggregate: here it is never captured, on
either database.
"""

from django.core.management.commands import flush
from django.db import DEFAULT_DB_ALIAS, transaction

from strangler_sync.capture import capture_silenced


class Command(flush.Command):
    def handle(self, **options):
        if options.get("database", DEFAULT_DB_ALIAS) != DEFAULT_DB_ALIAS:
            return super().handle(**options)
        with transaction.atomic(), capture_silenced():
            return super().handle(**options)
