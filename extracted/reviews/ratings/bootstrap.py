"""Taking ownership: move review id allocation above every id synced from the monolith.

Followers insert rows with the owner's ids, which PostgreSQL identity sequences do not see. Before this
service creates reviews itself (ownership of "review" flipped, the monolith's outbox drained), run
``manage.py reviews_id_sequences [--headroom N]`` so new ids start above every id the monolith handed out.
"""

from __future__ import annotations

from django.db import connection, transaction
from django.db.models import Max

from servicekit.errors import InvalidInput

from .models import Review


def review_id_sequence_advance(*, headroom: int = 0) -> int:
    """Make the next review id max(id) + 1 + headroom (never lower than it already is); returns it."""
    if headroom < 0:
        raise InvalidInput("headroom must not be negative.", details={"headroom": [str(headroom)]})
    table = Review._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Lock out concurrent inserts while the sequence moves (ids taken meanwhile would be skipped over).
            cursor.execute(f"LOCK TABLE {connection.ops.quote_name(table)} IN EXCLUSIVE MODE")
        wanted = (Review.objects.aggregate(top=Max("id"))["top"] or 0) + 1 + headroom
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
            (sequence,) = cursor.fetchone()
            cursor.execute(f"SELECT last_value, is_called FROM {sequence}")
            last_value, is_called = cursor.fetchone()
            wanted = max(wanted, last_value + 1 if is_called else last_value)
            cursor.execute("SELECT setval(%s, %s, false)", [sequence, wanted])
            return wanted
        if connection.vendor == "sqlite":
            # sqlite_sequence holds the largest id handed out; the next one is seq + 1.
            cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
            row = cursor.fetchone()
            wanted = max(wanted, (row[0] + 1) if row else 1)
            if row:
                cursor.execute("UPDATE sqlite_sequence SET seq = %s WHERE name = %s", [wanted - 1, table])
            else:
                cursor.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (%s, %s)", [table, wanted - 1])
            return wanted
    raise InvalidInput(f"Unsupported database vendor {connection.vendor!r}.")
