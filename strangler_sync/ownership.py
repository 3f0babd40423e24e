"""Who owns writes of each aggregate: one JSON (or YAML) file, ``{"product": "catalog", ...}``.

Path: ``STRANGLER_SYNC["OWNERSHIP_FILE"]``, else ``$STRANGLER_OWNERSHIP_FILE``, else ``var/ownership.json``.
A missing file or an aggregate it does not name means ``DEFAULT_OWNER`` ("monolith"): before any
migration step the monolith owns everything. Migration plans flip an aggregate with ``ownership_set``
(atomic replace, so readers never see a half-written file); readers cache the parsed file and re-read
it when its mtime changes, so every process of every project sees a flip within one stat() call.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import yaml

from servicekit.files import file_write_atomic
from strangler_sync.conf import sync_settings
from strangler_sync.errors import NotOwner

_cache: dict[str, tuple[tuple, dict[str, str]]] = {}
_lock = threading.Lock()


def _load(path: Path) -> dict[str, str]:
    try:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_ino, stat.st_size)  # os.replace makes a new inode
    except FileNotFoundError:
        return {}
    cached = _cache.get(str(path))
    if cached is not None and cached[0] == stamp:
        return cached[1]
    text = path.read_text()
    data = yaml.safe_load(text) if path.suffix in {".yaml", ".yml"} else json.loads(text or "{}")
    owners = {str(k): str(v) for k, v in (data or {}).get("owners", data or {}).items()}
    _cache[str(path)] = (stamp, owners)
    return owners


def ownership_map() -> dict[str, str]:
    """Every aggregate the file names, with its owner."""
    return dict(_load(sync_settings().ownership_file))


def ownership_owner_get(*, aggregate_type: str) -> str:
    config = sync_settings()
    return _load(config.ownership_file).get(aggregate_type, config.default_owner)


def ownership_is_owner(*, aggregate_type: str, project: str | None = None) -> bool:
    return ownership_owner_get(aggregate_type=aggregate_type) == (project or sync_settings().origin)


def ownership_require_owner(*, aggregate_type: str) -> None:
    """Raise NotOwner (409 ``not_owner``) unless this project owns writes of the aggregate."""
    owner = ownership_owner_get(aggregate_type=aggregate_type)
    origin = sync_settings().origin
    if owner != origin:
        raise NotOwner(
            f"{origin} does not own {aggregate_type} writes; {owner} does",
            details={"aggregate": aggregate_type, "owner": owner, "project": origin},
        )


def ownership_set(*, aggregate_type: str, owner: str) -> dict[str, str]:
    """Make `owner` the writer of `aggregate_type`; returns the new map. Atomic for concurrent readers."""
    path = sync_settings().ownership_file
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock:
        owners = dict(_load(path))
        owners[aggregate_type] = owner
        if path.suffix in {".yaml", ".yml"}:
            text = yaml.safe_dump({"owners": owners}, sort_keys=True)
        else:
            text = json.dumps({"owners": owners}, indent=2, sort_keys=True) + "\n"
        file_write_atomic(path=path, data=text)
        _cache.pop(str(path), None)
    return owners
