"""Which traffic planes a route file feeds, and whether each serves the file as it is now (its digest).

Every running plane records itself under ``$STRANGLER_VAR_DIR/planes/`` (one JSON file per plane): the nginx
plane when ``NginxInstance`` starts or reloads it (its options, so the control plane can render and reload it
again), the mitmproxy plane when its admin server starts. A plane answers the digest of the route file it
serves: nginx on its admin listener (``/strangler/digest``), mitmproxy in its admin's ``/diffs``. A record
whose process is gone is dropped when read.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from servicekit.env import var_dir
from servicekit.files import file_write_atomic

KINDS = ("nginx", "mitmproxy")


def planes_dir() -> Path:
    """Read per call, so tests and tools pointing STRANGLER_VAR_DIR elsewhere get their own registry."""
    return var_dir() / "planes"


@dataclass(frozen=True)
class PlaneRecord:
    kind: str  # one of KINDS
    routes: str  # the route file it serves (resolved path)
    key: str  # what tells two planes of a kind apart: nginx's runtime dir, mitmproxy's admin address
    digest_url: str | None  # where it answers the digest it serves; None: it cannot say (no admin listener)
    pid: int | None = None  # mitmproxy's process; nginx's master is found from its pid file instead
    options: dict | None = None  # nginx: NginxOptions to render with again (never the override secret itself)
    # It follows the route file itself (`strangler-proxy nginx-run`, e.g. in its own container): planes_follow
    # only waits for its digest and never renders, signals or starts it.
    reloads_itself: bool = False
    # Such a plane's last refusal: the digest of a file its nginx would not load, and nginx's reason.
    refused_digest: str | None = None
    refused_reason: str | None = None

    @property
    def path(self) -> Path:
        return planes_dir() / f"{self.kind}-{hashlib.sha256(self.key.encode()).hexdigest()[:16]}.json"


def plane_register(*, record: PlaneRecord) -> None:
    file_write_atomic(path=record.path, data=json.dumps(asdict(record), indent=1))


def plane_unregister(*, kind: str, key: str) -> None:
    PlaneRecord(kind=kind, routes="", key=key, digest_url=None).path.unlink(missing_ok=True)


def _alive(record: PlaneRecord) -> bool:
    if record.kind == "mitmproxy":
        try:
            os.kill(record.pid or 0, 0)
        except (OSError, ValueError):
            return False
        return bool(record.pid)
    return True  # a registered nginx whose master died is "stopped", and a plan's reload starts it again


def planes_for(*, routes: Path | None = None) -> list[PlaneRecord]:
    """The planes registered for this route file (all of them without one); dead mitmproxy records are dropped."""
    found = []
    wanted = str(Path(routes).resolve()) if routes is not None else None
    for path in sorted(planes_dir().glob("*.json")):
        try:
            record = PlaneRecord(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            continue  # being replaced, or not ours
        if not _alive(record):
            path.unlink(missing_ok=True)
            continue
        if wanted is None or record.routes == wanted:
            found.append(record)
    return found


def plane_served_digest(*, record: PlaneRecord, timeout: float = 5.0) -> str | None:
    """The digest the plane answers now; None when it does not answer (stopped, no admin listener)."""
    if record.digest_url is None:
        return None
    try:
        response = requests.get(record.digest_url, timeout=timeout)
    except requests.RequestException:
        return None
    if response.status_code != 200:
        return None
    if record.kind == "nginx":
        return response.text.strip()
    try:
        return (response.json().get("route_table") or {}).get("digest")
    except ValueError:
        return None


def plane_refusal(*, record: PlaneRecord, digest: str) -> str | None:
    """Why the plane refused the file with this digest, as it registered it now; None when it did not (yet)."""
    try:
        now = PlaneRecord(**json.loads(record.path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    return now.refused_reason if now.refused_digest == digest else None


class PlaneError(RuntimeError):
    """A plane did not take the route file: nginx refused or failed to reload, or a plane kept its old digest."""


def planes_follow(*, routes: Path, timeout: float = 60.0) -> list[str]:
    """Make every plane of the route file serve it as it is now; returns what was done, plane by plane.

    Each nginx plane is rendered, `nginx -t`-ed, swapped and reloaded (a refused config leaves the running one),
    but for those that reload themselves (`strangler-proxy nginx-run`); then every plane that can say must answer
    the file's digest within ``timeout`` seconds (mitmproxy and following nginx planes reload the file themselves;
    an nginx master that could not load the config keeps the old one and its old digest).
    """
    import time

    from strangler_proxy.loader import load_route_file
    from strangler_proxy.nginx.control import NginxError, nginx_instance_of

    table = load_route_file(routes)
    records = planes_for(routes=routes)
    done = []
    for record in records:
        if record.kind == "nginx" and not record.reloads_itself:
            secret = os.environ.get(table.override.secret_env) or None
            try:
                done.append(nginx_instance_of(record=record, override_secret=secret).reload(table))
            except NginxError as exc:
                raise PlaneError(f"nginx plane {record.key}: {exc}") from exc
    deadline = time.monotonic() + timeout
    for record in records:
        if record.digest_url is None:
            continue
        while (served := plane_served_digest(record=record)) != table.digest:
            if refusal := plane_refusal(record=record, digest=table.digest):
                raise PlaneError(f"{record.kind} plane {record.key} refused {table.digest[:12]}: {refusal}")
            if time.monotonic() > deadline:
                raise PlaneError(f"{record.kind} plane {record.key} serves {(served or 'nothing')[:12]}, not "
                                 f"{table.digest[:12]} of {routes}, after {timeout:g}s")
            time.sleep(0.1)
        done.append(f"{record.kind} plane {record.key} serves {table.digest[:12]}")
    return done
