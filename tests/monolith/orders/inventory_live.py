"""The inventory service as a real process for the monolith's saga tests, plus a fault-injecting HTTP proxy.

The service runs under its own manage.py with its own database: a SQLite file, or, when the monolith's
tests run on PostgreSQL, a private database on the same server (created here, dropped afterwards).
``StallingProxy`` sits between checkout and the service and can hold chosen requests (then forward them
late, as a slow network or a stuck worker would) or answer 503 to everything.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from django.conf import settings
from django.core import serializers

from monolith.catalog.models import Product
from monolith.inventory.models import StockItem
from tests.extracted.catalog import live

INVENTORY_MANAGE = live.REPO / "extracted" / "inventory" / "manage.py"
TOKEN = "saga-test-token-0123456789"


class ServiceDatabase:
    """Where the service keeps its rows, and plain SQL reads of them (the test's view of 'the other database')."""

    def __init__(self, workdir: Path):
        monolith_db = settings.DATABASES["default"]
        self.postgres = "postgresql" in monolith_db["ENGINE"]
        if self.postgres:
            self.name = f"saga_inventory_{uuid.uuid4().hex[:8]}"
            self.server = {k: monolith_db[k] for k in ("HOST", "PORT", "USER", "PASSWORD")}
            self._admin(f'CREATE DATABASE "{self.name}"')
            auth = self.server["USER"] + (f":{self.server['PASSWORD']}" if self.server["PASSWORD"] else "")
            self.url = f"postgres://{auth}@{self.server['HOST']}:{self.server['PORT'] or 5432}/{self.name}"
        else:
            self.path = workdir / "inventory.sqlite3"
            self.url = f"sqlite:///{self.path}"

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(dbname="postgres", autocommit=True, host=self.server["HOST"],
                             port=self.server["PORT"] or 5432, user=self.server["USER"],
                             password=self.server["PASSWORD"] or None) as connection:
            connection.execute(statement)

    def rows(self, query: str, params: tuple = ()) -> list[tuple]:
        if self.postgres:
            import psycopg

            with psycopg.connect(dbname=self.name, host=self.server["HOST"], port=self.server["PORT"] or 5432,
                                 user=self.server["USER"], password=self.server["PASSWORD"] or None) as connection:
                return list(connection.execute(query.replace("?", "%s"), params).fetchall())
        with sqlite3.connect(self.path, timeout=10) as connection:
            return list(connection.execute(query, params).fetchall())

    def drop(self) -> None:
        if self.postgres:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    # what the saga tests look at
    def stock(self, product_id: int) -> tuple[int, int]:
        (row,) = self.rows("SELECT quantity_on_hand, quantity_reserved FROM inventory_service_stockitem "
                           "WHERE product_id = ?", (product_id,))
        return row

    def reservations(self, reference: str) -> list[tuple[int, int, str]]:
        return self.rows("SELECT product_id, quantity, status FROM inventory_service_reservation "
                         "WHERE reference = ? ORDER BY product_id", (reference,))

    def reservation_count(self) -> int:
        return self.rows("SELECT COUNT(*) FROM inventory_service_reservation")[0][0]


class InventoryService:
    """migrate + runserver of extracted/inventory, owning stock per its ownership seed file."""

    def __init__(self, workdir: Path, *, ownership_file: Path):
        self.workdir = workdir
        self.database = ServiceDatabase(workdir)
        self.env = live.project_env(
            workdir=workdir, INVENTORY_DATABASE_URL=self.database.url, INVENTORY_API_TOKENS=TOKEN,
            STRANGLER_OWNERSHIP_FILE=str(ownership_file), STRANGLER_SYNC_RELAY_TRIGGER="none",
        )
        live.manage(INVENTORY_MANAGE, "migrate", "--noinput", "-v", "0", env=self.env)
        self.server = live.LiveServer(INVENTORY_MANAGE, env=self.env, log=workdir / "inventory.log")
        self.url = self.server.url
        self.server.wait_ready()

    def load_from_monolith(self) -> None:
        """Copy the monolith's products and stock levels (its test database) with the service's own loader."""
        dump = self.workdir / "dump.json"
        records = serializers.serialize("json", [*Product.objects.all(), *StockItem.objects.all()])
        dump.write_text(records)
        live.manage(INVENTORY_MANAGE, "inventory_import", str(dump), env=self.env)

    def manage(self, *args: str) -> str:
        return live.manage(INVENTORY_MANAGE, *args, env=self.env)

    def stop(self) -> None:
        self.server.stop()
        self.database.drop()


class StallingProxy:
    """HTTP proxy to the service. ``stalls[suffix] = seconds`` holds matching requests until ``release`` is set
    (at most that long), then forwards them late; ``fail_all = True`` answers 503 without forwarding. ``seen``
    lists (method, path, status) forwarded."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.stalls: dict[str, float] = {}
        self.fail_all = False
        self.seen: list[tuple[str, str, int]] = []
        self.late_done = threading.Event()
        self.release = threading.Event()  # set it once the caller gave up: "late" then means after, not timed
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                self._forward("POST")

            def do_GET(self):
                self._forward("GET")

            def do_PUT(self):
                self._forward("PUT")

            def _forward(self, method: str):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.fail_all:
                    proxy.seen.append((method, self.path, 503))
                    self._answer(503, json.dumps({"error": {"code": "down", "message": "down", "details": {}}}))
                    return
                stall = next((s for suffix, s in proxy.stalls.items() if self.path.endswith(suffix)), 0)
                if stall:
                    proxy.release.wait(stall)
                headers = {k: v for k, v in self.headers.items() if k.lower() in {"authorization", "content-type"}}
                response = requests.request(method, proxy.upstream + self.path, data=body, headers=headers, timeout=30)
                proxy.seen.append((method, self.path, response.status_code))
                if stall:
                    proxy.late_done.set()
                try:
                    self._answer(response.status_code, response.text)
                except OSError:  # the client gave up waiting (that is the point of the stall)
                    pass

            def _answer(self, status: int, text: str):
                payload = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
