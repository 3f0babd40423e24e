"""Who owns writes of each aggregate type, and since which epoch: a row per aggregate type in the project's database.

Every process of a project reads the same rows transactionally (no shared filesystem between hosts), and
a write is fenced *inside its own transaction*: ``event_publish`` calls ``ownership_fence``, which locks the
aggregate type's row in share mode (PostgreSQL ``FOR KEY SHARE``; SQLite serialises writers anyway), checks
the owner and returns the epoch the event carries. A flip (``ownership_set``) locks the row exclusively
(``FOR UPDATE``), so it waits for the writes in flight and every write that commits after it sees the
new owner: a write can no longer commit on the old owner after its flip.

The epoch is a monotonic integer per aggregate type; a flip moves it up on every project of the migration
to the same number (the control plane picks max + 1), and followers refuse events whose epoch is older than
the one they know (``consumer``: outcome ``fenced``).

Seed (the migration path from the ownership file): an aggregate type without a row is owned by what the
file names (``STRANGLER_SYNC["OWNERSHIP_FILE"]`` / ``$STRANGLER_OWNERSHIP_FILE``, JSON or YAML
``{"owners": {"product": "catalog"}}``), else ``DEFAULT_OWNER``, at epoch 0. The first write or flip
stores that row; from then on the database is the truth and the file is no longer read for that type.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from django.db import connection, transaction
from django.utils import timezone

from strangler_sync.conf import sync_settings
from strangler_sync.errors import NotInTransaction, NotOwner, StaleEpoch
from strangler_sync.models import AggregateVersion, AppliedVersion, Ownership


def _seed_owners() -> dict[str, str]:
    """The ownership file's map (the seed); {} when there is none."""
    path: Path = sync_settings().ownership_file
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    data = yaml.safe_load(text) if path.suffix in {".yaml", ".yml"} else json.loads(text or "{}")
    return {str(k): str(v) for k, v in (data or {}).get("owners", data or {}).items()}


def _seed_owner(aggregate_type: str) -> str:
    return _seed_owners().get(aggregate_type, sync_settings().default_owner)


def _row_lock(*, aggregate_type: str, exclusive: bool) -> tuple[str, int]:
    """(owner, epoch) of the aggregate type's row, locked until the caller's transaction ends; the row is
    stored from the seed first when missing (an absent row could not be locked)."""
    table = connection.ops.quote_name(Ownership._meta.db_table)
    lock = ""
    if connection.vendor == "postgresql":
        lock = " FOR UPDATE" if exclusive else " FOR KEY SHARE"
    select = f"SELECT owner, epoch FROM {table} WHERE aggregate_type = %s{lock}"
    with connection.cursor() as cursor:
        cursor.execute(select, [aggregate_type])
        row = cursor.fetchone()
        if row is None:
            # ON CONFLICT DO NOTHING waits for a concurrent flip inserting the same row, then the re-read
            # (a new statement: a new snapshot) sees what it committed.
            cursor.execute(
                f"INSERT INTO {table} (aggregate_type, owner, epoch, updated_at) VALUES (%s, %s, 0, %s) "
                "ON CONFLICT (aggregate_type) DO NOTHING",
                [aggregate_type, _seed_owner(aggregate_type),
                 Ownership._meta.get_field("updated_at").get_db_prep_value(timezone.now(), connection)],
            )
            cursor.execute(select, [aggregate_type])
            row = cursor.fetchone()
    return str(row[0]), int(row[1])


def _not_owner(aggregate_type: str, owner: str) -> NotOwner:
    origin = sync_settings().origin
    return NotOwner(
        f"{origin} does not own {aggregate_type} writes; {owner} does",
        details={"aggregate": aggregate_type, "owner": owner, "project": origin},
    )


def ownership_fence(*, aggregate_type: str) -> int:
    """Inside the write's transaction: lock the ownership row (shared), raise NotOwner unless this project
    owns the aggregate type, return the epoch the write's event carries."""
    if not connection.in_atomic_block:
        raise NotInTransaction("ownership_fence must run inside the write's transaction.atomic()")
    owner, epoch = _row_lock(aggregate_type=aggregate_type, exclusive=False)
    if owner != sync_settings().origin:
        raise _not_owner(aggregate_type, owner)
    return epoch


def ownership_epoch_lock(*, aggregate_type: str) -> int:
    """Inside a follower's apply transaction: the epoch this project knows for the type (row locked, shared)."""
    return _row_lock(aggregate_type=aggregate_type, exclusive=False)[1]


def ownership_states() -> list[dict]:
    """Every aggregate type this project has a row or a seed for: ``{aggregate, owner, epoch, stored}``."""
    rows = {o.aggregate_type: o for o in Ownership.objects.all()}
    states = [{"aggregate": a, "owner": o.owner, "epoch": o.epoch, "stored": True} for a, o in rows.items()]
    states += [{"aggregate": a, "owner": owner, "epoch": 0, "stored": False}
               for a, owner in _seed_owners().items() if a not in rows]
    return sorted(states, key=lambda s: s["aggregate"])


def ownership_map() -> dict[str, str]:
    """Every aggregate type named in the database or the seed file, with its owner."""
    return {s["aggregate"]: s["owner"] for s in ownership_states()}


def ownership_owner_get(*, aggregate_type: str) -> str:
    """The owner as of now (no lock): for routing decisions and the early refusal; writes are fenced again
    inside their transaction by ``ownership_fence``."""
    row = Ownership.objects.filter(aggregate_type=aggregate_type).values_list("owner", flat=True).first()
    return row if row is not None else _seed_owner(aggregate_type)


def ownership_is_owner(*, aggregate_type: str, project: str | None = None) -> bool:
    return ownership_owner_get(aggregate_type=aggregate_type) == (project or sync_settings().origin)


def ownership_require_owner(*, aggregate_type: str) -> None:
    """Raise NotOwner (409 ``not_owner``) unless this project owns writes of the aggregate (early check, no lock:
    the write's transaction checks again under the lock)."""
    owner = ownership_owner_get(aggregate_type=aggregate_type)
    if owner != sync_settings().origin:
        raise _not_owner(aggregate_type, owner)


def ownership_set(*, aggregate_type: str, owner: str, epoch: int | None = None) -> dict:
    """Make `owner` the writer of `aggregate_type` at `epoch` (None: the current epoch + 1, or unchanged when
    the owner already is `owner`). Waits for the writes in flight (exclusive row lock); idempotent for the
    same owner and epoch; StaleEpoch when `epoch` is below the current one, or equal with another owner.
    Returns ``{aggregate, owner, epoch, previous_owner, previous_epoch}``."""
    with transaction.atomic():
        before_owner, before_epoch = _row_lock(aggregate_type=aggregate_type, exclusive=True)
        if epoch is None:
            epoch = before_epoch if owner == before_owner else before_epoch + 1
        if epoch < before_epoch or (epoch == before_epoch and owner != before_owner):
            raise StaleEpoch(
                f"{aggregate_type} is at epoch {before_epoch} ({before_owner}): cannot set {owner} at epoch {epoch}",
                details={"aggregate": aggregate_type, "owner": before_owner, "epoch": before_epoch},
            )
        if (owner, epoch) != (before_owner, before_epoch):
            Ownership.objects.filter(aggregate_type=aggregate_type).update(
                owner=owner, epoch=epoch, updated_at=timezone.now()
            )
    return {"aggregate": aggregate_type, "owner": owner, "epoch": epoch,
            "previous_owner": before_owner, "previous_epoch": before_epoch}


def ownership_watermark(*, aggregate_type: str) -> int:
    """The sum over the type's aggregates of the newest version this project issued or applied: a flip's drain
    is complete when the new owner's watermark reached the old owner's (a follower never has a version above
    the owner's, so equal sums mean every aggregate is at the same version). One scan of the version rows."""
    issued = connection.ops.quote_name(AggregateVersion._meta.db_table)
    applied = connection.ops.quote_name(AppliedVersion._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COALESCE(SUM(v), 0) FROM (SELECT MAX(version) AS v FROM (SELECT aggregate_id, version FROM "
            f"{issued} WHERE aggregate_type = %s UNION ALL SELECT aggregate_id, version FROM {applied} "
            "WHERE aggregate_type = %s) AS known GROUP BY aggregate_id) AS newest",
            [aggregate_type, aggregate_type],
        )
        return int(cursor.fetchone()[0])
