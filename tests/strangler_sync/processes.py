"""Real processes for end-to-end tests: the monolith and the catalog service, each with its own database.

Both projects get the same private var dir (filesystem broker folders), broker namespace and
ownership file through the environment, so a test never touches var/ or other runs' queues.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import requests

REPO = Path(__file__).resolve().parents[2]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Project:
    def __init__(self, name: str, manage: list[str], env: dict[str, str], workdir: Path):
        self.name = name
        self.manage = manage
        self.env = {**os.environ, **env}
        self.workdir = workdir
        self.processes: list[subprocess.Popen] = []
        self.url: str | None = None

    def run(self, *args: str, check: bool = True, timeout: float = 180, env: dict | None = None):
        result = subprocess.run(
            [*self.manage, *args], cwd=REPO, env={**self.env, **(env or {})}, capture_output=True, text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{self.name} {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def shell(self, code: str) -> str:
        """Run Python in the project (manage.py shell -c) and return its stdout."""
        return self.run("shell", "-c", code).stdout

    def shell_json(self, code: str):
        out = self.shell(code)
        return json.loads(out.strip().splitlines()[-1])

    def start(self, *args: str, label: str | None = None, env: dict | None = None) -> subprocess.Popen:
        log = open(self.workdir / f"{self.name}-{label or args[0]}-{len(self.processes)}.log", "w")  # noqa: SIM115
        process = subprocess.Popen(
            [*self.manage, *args], cwd=REPO, env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process.log_path = log.name
        self.processes.append(process)
        return process

    def serve(self) -> str:
        port = free_port()
        self.start("runserver", "--noreload", f"127.0.0.1:{port}", label="web")
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90  # a loaded 2-core CI box can be slow to import Django
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self.url
            except requests.RequestException:
                time.sleep(0.2)
        raise AssertionError(f"{self.name} did not start serving")

    def stop_all(self) -> None:
        for process in self.processes:
            stop(process)
        self.processes.clear()


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def kill9(process: subprocess.Popen) -> None:
    stop(process, signal.SIGKILL)


class PgDatabases:
    """Throwaway PostgreSQL databases, dropped at the end."""

    def __init__(self):
        self.names: list[str] = []

    def create(self, prefix: str) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        return f"postgres://postgres@127.0.0.1:5432/{name}"

    def drop_all(self) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            for name in self.names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def two_projects(tmp_path: Path, *, broker_url: str, databases: PgDatabases | None,
                 urls: tuple[str, str] | None = None) -> tuple[Project, Project]:
    """The monolith (owner, relay) and the catalog service (follower, consumer), migrated, sharing a namespace."""
    var = tmp_path / "var"
    var.mkdir()
    common = {
        "STRANGLER_VAR_DIR": str(var),
        "STRANGLER_SYNC_NAMESPACE": "e2e" + uuid.uuid4().hex[:8],
        "STRANGLER_OWNERSHIP_FILE": str(tmp_path / "ownership.json"),
        "STRANGLER_SYNC_RELAY_TRIGGER": "none",
        "CELERY_BROKER_URL": broker_url,
        "LOG_LEVEL": "WARNING",
        "DEBUG": "1",
        "PYTHONUNBUFFERED": "1",
    }
    if urls is not None:
        mono_db, catalog_db = urls
    elif databases is not None:
        mono_db, catalog_db = databases.create("e2e_mono"), databases.create("e2e_catalog")
    else:
        mono_db, catalog_db = f"sqlite:///{var / 'mono.sqlite3'}", f"sqlite:///{var / 'catalog.sqlite3'}"
    python = sys.executable
    monolith = Project("monolith", [python, "manage.py"],
                       {**common, "DATABASE_URL": mono_db, "DJANGO_SETTINGS_MODULE": "monolith.settings"}, tmp_path)
    catalog = Project(
        "catalog", [python, "extracted/catalog/manage.py"],
        {**common, "DATABASE_URL": mono_db, "CATALOG_DATABASE_URL": catalog_db,
         "DJANGO_SETTINGS_MODULE": "extracted.catalog.settings"}, tmp_path,
    )
    for project in (monolith, catalog):
        project.run("migrate", "--noinput", "-v", "0")
    return monolith, catalog


# Runs in the monolith: its own catalog services, which write the row and its event in one transaction.
WRITER = """
import json, random
from monolith.catalog import services
from monolith.catalog.models import Category, Product

rng = random.Random({seed})
cats = [services.category_create(name=f"Cat {{i}} {seed}") for i in range({categories})]
products = [services.product_create(sku=f"S{seed}-{{i}}", name=f"P {{i}} {seed}", price=f"{{i + 1}}.00",
                                    category=rng.choice(cats)) for i in range({products})]
for n in range({updates}):
    p = rng.choice(products)
    services.product_update(product=p, data={{"price": f"{{n + 2}}.50", "name": f"P {{p.id}} v{{n}}"}})
print(json.dumps({{"products": Product.objects.count(), "categories": Category.objects.count()}}))
"""


def write(monolith: Project, *, seed: int = 1, categories: int = 3, products: int = 40, updates: int = 60) -> dict:
    return monolith.shell_json(WRITER.format(seed=seed, categories=categories, products=products, updates=updates))


OUTBOX_STATS = """
import json
from strangler_sync.selectors import outbox_stats
print(json.dumps(outbox_stats()))
"""

INBOX_STATS = """
import json
from django.db.models import Count
from strangler_sync.models import InboxMessage, DeadLetter
rows = InboxMessage.objects.values_list("message_id", flat=True)
ids = [str(m) for m in rows]
print(json.dumps({"inbox": len(ids), "distinct": len(set(ids)),
                  "applied": InboxMessage.objects.filter(outcome="applied").count(),
                  "dead": DeadLetter.objects.count()}))
"""


SYNC_QUEUES = ["sync.monolith", "sync.catalog", "sync.inventory", "sync.reviews"]


def broker_cleanup(url: str, namespace: str) -> None:
    """Delete a run's namespaced exchange and queues from a real broker (they are durable)."""
    from kombu import Connection

    with Connection(url) as connection:
        for name in SYNC_QUEUES:
            for queue in (f"{namespace}.{name}", f"{namespace}.{name}.dlq"):
                channel = connection.channel()
                try:
                    channel.queue_delete(queue)
                except Exception:  # absent: a failed delete closes the channel, hence one per queue
                    pass
                finally:
                    try:
                        channel.close()
                    except Exception:
                        pass
        channel = connection.channel()
        channel.exchange_delete(f"{namespace}.strangler.events")
        channel.close()


def wait_for(predicate, *, timeout: float = 120, interval: float = 0.3, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    described = what() if callable(what) else what  # a callable describes the state seen at the deadline
    raise AssertionError(f"timed out waiting for {described} (last: {last!r})")


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on its own port, so a test can restart it without touching anyone else's."""

    def __init__(self, root: Path):
        import glob
        import shutil

        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        self.bin = Path(bins[-1]) if bins else None
        self.root = root
        self.data = root / "pgdata"
        self.port = free_port()
        self.runuser = shutil.which("runuser")

    @property
    def available(self) -> bool:
        return self.bin is not None and (self.bin / "initdb").exists() and (os.geteuid() != 0 or bool(self.runuser))

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(a) for a in argv]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = [self.runuser, "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=check)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil_chown(self.root)
        if not self.data.exists():
            self._run(self.bin / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")
        self._pg_ctl("start")

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(self.bin / "pg_ctl", action, "-D", self.data, "-w", "-t", "60", "-l", self.root / "pg.log",
                  "-o", options, *extra)

    def restart(self) -> None:
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        if self.data.exists():
            self._run(self.bin / "pg_ctl", "stop", "-D", self.data, "-m", "immediate", check=False)

    def url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def createdb(self, name: str) -> str:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def shutil_chown(path: Path) -> None:
    import shutil

    shutil.chown(path, user="postgres", group="postgres")
    shutil_traversable(path)  # every parent must be traversable by the postgres user


class PrivateRabbitMQ:
    """A throwaway RabbitMQ node on its own ports, so a test can stop it without touching the shared broker."""

    def __init__(self, root: Path):
        import shutil

        self.root = root
        self.server = shutil.which("rabbitmq-server") or ("/usr/sbin/rabbitmq-server"
                                                           if os.path.exists("/usr/sbin/rabbitmq-server") else None)
        self.ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
        self.node = f"sync_test_{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def available(self) -> bool:
        return self.server is not None and os.geteuid() == 0  # the server script switches to the rabbitmq user

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self) -> None:
        import shutil

        for sub in ("mnesia", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "plugins").write_text("[].\n")
        config = f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n"
        (self.root / "rabbitmq.conf").write_text(config)
        for path in [self.root, *self.root.rglob("*")]:
            shutil.chown(path, user="rabbitmq", group="rabbitmq")
        shutil_traversable(self.root)
        env = {**os.environ, "RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_PORT": str(self.port),
               "RABBITMQ_DIST_PORT": str(free_port()), "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
               "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"), "RABBITMQ_LOG_BASE": str(self.root / "log"),
               "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "plugins"),
               "RABBITMQ_PID_FILE": str(self.root / "pid")}
        log = open(self.root / "out.log", "w")  # noqa: SIM115 - the server writes to it until stopped
        self.process = subprocess.Popen([self.server], cwd="/tmp", env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        wait_for(lambda: _port_open(self.port), timeout=90, interval=0.25, what="private RabbitMQ listening")

    def _ctl(self, *args: str, attempts: int = 3) -> None:
        # rabbitmqctl reaches the node over Erlang distribution; on a loaded 2-core machine a call can fail
        # (exit 69, node not reachable yet) although the node is fine a moment later, so retry a few times.
        for attempt in range(attempts):
            result = subprocess.run([self.ctl, "-n", self.node, *args], capture_output=True, text=True, timeout=120)
            if result.returncode == 0:
                return
            if attempt + 1 < attempts:
                time.sleep(2 * (attempt + 1))
        raise AssertionError(
            f"rabbitmqctl {' '.join(args)} failed with {result.returncode}: {(result.stderr or result.stdout)[-500:]}"
        )

    def stop_app(self) -> None:
        self._ctl("stop_app")

    def start_app(self) -> None:
        self._ctl("start_app")
        wait_for(lambda: _port_open(self.port), timeout=60, interval=0.25, what="private RabbitMQ back")

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            self._ctl("stop")
        except Exception:  # already gone or wedged: kill the whole session
            pass
        stop(self.process)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def shutil_traversable(path: Path) -> None:
    for parent in path.parents:
        if str(parent) in ("/", "/tmp"):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o011)
