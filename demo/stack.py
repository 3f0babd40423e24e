"""What the demo runs: the projects (monolith, then each extracted service present), their ports and processes."""

from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from servicekit.files import file_write_atomic
from strangler_sync.verify import VERIFY_TOKEN_ENV

ROOT = Path(__file__).resolve().parent.parent

MONOLITH_PORT = 8000
PROXY_PORT = 8080
PROXY_ADMIN_PORT = 8081  # mitmproxy's admin; on the nginx plane, its metrics exporter
NGINX_DIGEST_PORT = 8082  # the nginx plane's admin listener (the route file digest it serves)
DIFF_ENDPOINT_PORT = 8790  # the nginx plane mirrors shadowed reads here
PLANES = ("mitmproxy", "nginx")


@dataclass(frozen=True)
class ProjectSpec:
    """One Django project of the demo: its manage.py, settings, port, what to backfill and which paths it serves."""

    name: str
    manage: str
    settings: str
    port: int
    # The first copy: the monolith's `manage.py sync_backfill --aggregate <name>` for each aggregate of
    # `backfill` the service has fewer rows of than the monolith, through the relay and the service's
    # consumer (the data plane, as a real extraction does). Services without one start empty and their
    # migration plan's backfill step fills them.
    backfill: tuple[str, ...] = ()
    # route-file prefixes of this service's paths
    routes: tuple[str, ...] = ()
    # True: the demo serves those paths' reads from the service (it has its first copy); False: the routes
    # start in mode monolith, for the service's migration plan to walk (backfill, shadow, canary, ...)
    routes_live: bool = False

    @property
    def is_monolith(self) -> bool:
        return self.name == "monolith"


MONOLITH = ProjectSpec(name="monolith", manage="manage.py", settings="monolith.settings", port=MONOLITH_PORT)

# Services in the order they were carved out; one is in the demo when its directory is in the checkout.
SERVICES: tuple[ProjectSpec, ...] = (
    ProjectSpec(name="catalog", manage="extracted/catalog/manage.py", settings="extracted.catalog.settings",
                port=8001, backfill=("category", "product"), routes=("/api/products/", "/api/categories/"),
                routes_live=True),
    ProjectSpec(name="inventory", manage="extracted/inventory/manage.py", settings="extracted.inventory.settings",
                port=8002, routes=("/api/stock/", "/api/reservations/")),
    ProjectSpec(name="reviews", manage="extracted/reviews/manage.py", settings="extracted.reviews.settings",
                port=8003, routes=("/api/reviews/",)),
)


def _named(name: str) -> ProjectSpec:
    return next(s for s in SERVICES if s.name == name)


def services_present(root: Path = ROOT) -> list[ProjectSpec]:
    return [s for s in SERVICES if (root / s.manage).exists() and (root / s.settings.replace(".", "/")).with_suffix(
        ".py").exists()]


@dataclass
class Stack:
    """The demo's layout for one run: var dir, port offset and the projects that take part."""

    var_dir: Path
    port_offset: int = 0
    plane: str = "mitmproxy"  # the traffic plane in front: one of PLANES
    projects: list[ProjectSpec] = field(default_factory=list)
    service_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))  # per start, never stored
    # What /sync/checksums/ callers send: the caller's $STRANGLER_SYNC_VERIFY_TOKEN, else a new one per start.
    verify_token: str = field(default_factory=lambda: os.environ.get(VERIFY_TOKEN_ENV) or secrets.token_urlsafe(24))

    @property
    def demo_dir(self) -> Path:
        return self.var_dir / "demo"

    @property
    def routes_path(self) -> Path:
        return self.demo_dir / "routes.yaml"

    @property
    def state_path(self) -> Path:
        return self.demo_dir / "stack.json"

    @property
    def log_dir(self) -> Path:
        return self.demo_dir / "logs"

    @property
    def ownership_path(self) -> Path:
        return self.var_dir / "ownership.json"

    @property
    def proxy_port(self) -> int:
        return PROXY_PORT + self.port_offset

    @property
    def admin_port(self) -> int:
        return PROXY_ADMIN_PORT + self.port_offset

    @property
    def digest_port(self) -> int:
        return NGINX_DIGEST_PORT + self.port_offset

    @property
    def diff_endpoint_port(self) -> int:
        return DIFF_ENDPOINT_PORT + self.port_offset

    @property
    def proxy_metrics(self) -> str:
        """The plans' gate source ($STRANGLER_PROXY_METRICS): the proxy admin's /metrics; on nginx, its exporter's
        and the diff endpoint's (shadow comparisons), summed."""
        admin = f"http://127.0.0.1:{self.admin_port}/metrics"
        if self.plane == "mitmproxy":
            return admin
        return f"[{admin}, http://127.0.0.1:{self.diff_endpoint_port}/metrics]"

    @property
    def ports(self) -> list[int]:
        extra = [self.digest_port, self.diff_endpoint_port] if self.plane == "nginx" else []
        return [self.port(p) for p in self.projects] + [self.proxy_port, self.admin_port, *extra]

    def proxy_commands(self) -> dict[str, tuple[list[str], str | None]]:
        """The traffic plane's processes: name -> (argv, health URL)."""
        proxy = [sys.executable, "-m", "strangler_proxy"]
        healthz = f"http://127.0.0.1:{self.proxy_port}/healthz"
        if self.plane == "mitmproxy":
            return {"proxy": ([*proxy, "run", "--routes", str(self.routes_path), "--listen-port", str(self.proxy_port),
                               "--admin-port", str(self.admin_port)], healthz)}
        runtime = str(self.demo_dir / "nginx")
        return {
            "diff-endpoint": ([sys.executable, "-m", "strangler_proxy.diff_endpoint", "--routes", str(self.routes_path),
                               "--listen", f"127.0.0.1:{self.diff_endpoint_port}",
                               "--diffs", str(self.demo_dir / "diffs-nginx.jsonl")],
                              f"http://127.0.0.1:{self.diff_endpoint_port}/diffs"),
            "proxy": ([*proxy, "nginx-run", "--routes", str(self.routes_path), "--listen",
                       f"127.0.0.1:{self.proxy_port}", "--admin-listen", f"127.0.0.1:{self.digest_port}",
                       "--runtime-dir", runtime, "--workers", "1", "--poll", "0.5"], healthz),
            "proxy-metrics": ([*proxy, "nginx-metrics", "--runtime-dir", runtime, "--listen",
                               f"127.0.0.1:{self.admin_port}"], f"http://127.0.0.1:{self.admin_port}/metrics"),
        }

    def port(self, project: ProjectSpec) -> int:
        return project.port + self.port_offset

    def url(self, project: ProjectSpec) -> str:
        return f"http://127.0.0.1:{self.port(project)}"

    def project_env(self, project: ProjectSpec) -> dict[str, str]:
        # Explicit settings module: manage.py only sets a default, and a caller's (e.g. pytest-django's) would win.
        env = {"DJANGO_SETTINGS_MODULE": project.settings}
        names = {p.name for p in self.projects}
        # Where the projects call each other: their defaults name the unshifted ports, and the monolith's
        # checkout authenticates to the inventory service with a token both sides must know.
        if project.is_monolith and "inventory" in names:
            env["INVENTORY_SERVICE_URL"] = self.url(_named("inventory"))
            env["INVENTORY_SERVICE_TOKEN"] = self.service_token
        elif project.name == "inventory":
            env["INVENTORY_API_TOKENS"] = self.service_token
        return env

    def manage(self, project: ProjectSpec, *args: str) -> list[str]:
        return [sys.executable, project.manage, *args]


def stack_build(*, var_dir: Path, port_offset: int = 0, root: Path = ROOT, plane: str = "mitmproxy") -> Stack:
    return Stack(var_dir=var_dir.resolve(), port_offset=port_offset, projects=[MONOLITH, *services_present(root)],
                 plane=plane)


def service_routes(project: ProjectSpec) -> list[dict]:
    """A service's route-file entries: live ones serve reads from it, the others wait in mode monolith.

    Live routes take safe methods only: writes keep going to the monolith, which owns every aggregate until
    a plan flips ownership (the services answer 409 not_owner before that).
    """
    routes: list[dict] = []
    for prefix in project.routes:
        if project.routes_live:
            route = {"prefix": prefix, "methods": ["GET", "HEAD", "OPTIONS"], "mode": "service",
                     "service": project.name, "fallback": True, "timeout": 10}
        else:
            route = {"prefix": prefix, "mode": "monolith", "service": project.name, "fallback": True, "timeout": 10}
        if prefix == "/api/products/":
            route["diff"] = {"ignore": ["$.results[*].updated_at"], "headers": ["content-type"]}
        routes.append(route)
        if prefix == "/api/products/":
            # the rating is the reviews app's, inside the catalog's prefix: it stays where reviews are
            routes.append({"pattern": "/api/products/*/rating/", "mode": "monolith"})
    return routes


IDENTITY_SERVICES = ("catalog", "reviews")  # authenticate with servicekit.identity (inventory: its own tokens)


def route_table_document(stack: Stack) -> dict:
    """The demo's route file: every project an upstream, every service's routes."""
    upstreams: dict = {"monolith": stack.url(MONOLITH)}
    routes: list[dict] = []
    for project in stack.projects[1:]:
        upstreams[project.name] = {"url": stack.url(project), "health_path": "/healthz"}
        routes += service_routes(project)
    return {
        "upstreams": upstreams,
        "monolith": "monolith",
        "sticky": {"cookie": "strangler_uid", "header": "X-User-Id"},
        "override": {"header": "X-Strangler-Force", "secret_env": "STRANGLER_OVERRIDE_SECRET"},
        "settings": {"route_headers": True, "max_body_bytes": 10485760,
                     "diff_endpoint": f"127.0.0.1:{stack.diff_endpoint_port}",
                     # the services that take the monolith's customers get who is asking, signed by the monolith
                     "identity": {"upstreams": [p.name for p in stack.projects[1:] if p.name in IDENTITY_SERVICES]}},
        "routes": routes,
    }


ROUTES_HEADER = """\
# The demo's route file (made by `python3 dev.py demo` from demo/stack.py; the tracked example is
# strangler_proxy/routes.yaml). The running proxy reloads it within a second of an edit, so changing a
# route's mode (monolith | shadow | canary | service) moves traffic live. Kept across restarts; the
# upstream ports are brought up to date at every start.
"""


def routes_file_ensure(stack: Stack) -> str:
    """Write the route file on the first start; later keep its routes, refresh the upstreams; say what it did.

    A service that joined since (its upstream is new) gets its upstream and its routes added; nothing else
    about the routes changes, since the control plane owns them once the demo has made them.
    """
    stack.demo_dir.mkdir(parents=True, exist_ok=True)
    wanted = route_table_document(stack)
    if not stack.routes_path.exists():
        _routes_write(stack.routes_path, wanted)
        return "created"
    current = yaml.safe_load(stack.routes_path.read_text()) or {}
    upstreams = current.get("upstreams") or {}
    changed = False
    for project in stack.projects[1:]:
        if project.name not in upstreams:
            current["routes"] = [*(current.get("routes") or []), *service_routes(project)]
    for name, spec in wanted["upstreams"].items():
        old = upstreams.get(name)
        old_url = old.get("url") if isinstance(old, dict) else old
        new_url = spec["url"] if isinstance(spec, dict) else spec
        if old_url != new_url:
            upstreams[name] = spec if old is None or not isinstance(old, dict) else {**old, "url": new_url}
            changed = True
    settings = current.get("settings") or {}
    if settings.get("diff_endpoint") != wanted["settings"]["diff_endpoint"]:  # the nginx plane's mirror target
        current["settings"] = {**settings, "diff_endpoint": wanted["settings"]["diff_endpoint"]}
        changed = True
    if not changed:
        return "kept"
    current["upstreams"] = upstreams
    _routes_write(stack.routes_path, current)
    return "upstreams updated"


def _routes_write(path: Path, document: dict) -> None:
    text = ROUTES_HEADER + yaml.safe_dump(document, sort_keys=False, default_flow_style=None)
    file_write_atomic(path=path, data=text)  # the proxy polls the file: it must never see half of it


def state_write(stack: Stack, *, pids: dict[str, int]) -> None:
    """var/demo/stack.json: URLs, files and process ids of the running demo (for tests and the control plane)."""
    state = {
        "plane": stack.plane,
        "proxy": f"http://127.0.0.1:{stack.proxy_port}",
        "proxy_admin": f"http://127.0.0.1:{stack.admin_port}",
        "proxy_metrics": stack.proxy_metrics,  # the plans' $STRANGLER_PROXY_METRICS
        "projects": {p.name: stack.url(p) for p in stack.projects},
        "routes_file": str(stack.routes_path),
        "ownership_file": str(stack.ownership_path),
        "var_dir": str(stack.var_dir),
        "logs": str(stack.log_dir),
        "pids": pids,
    }
    file_write_atomic(path=stack.state_path, data=json.dumps(state, indent=2) + "\n")
