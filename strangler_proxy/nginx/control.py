"""Run the private nginx instance: find the binary, test a config, start, stop, reload keeping the old one."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from servicekit.files import file_write_atomic
from strangler_proxy.nginx.render import DIGEST_PATH, TEMP_KINDS, NginxOptions, render_nginx, temp_path
from strangler_proxy.planes import PlaneRecord, plane_register, plane_unregister
from strangler_proxy.spec import RouteTable

CONF_NAME = "nginx.conf"


def _uid(user: str | None) -> int | None:
    return pwd.getpwnam(user).pw_uid if user else None


class NginxError(RuntimeError):
    """nginx refused a config or could not be started/reloaded; the message carries nginx's own reason."""


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not found:
        raise NginxError("nginx is not installed (apt-get install nginx)")
    return found


def _run(args: list[str], prefix: Path) -> subprocess.CompletedProcess:
    return subprocess.run([nginx_binary(), "-p", f"{prefix}/", *args], capture_output=True, text=True, timeout=30)


def _reason(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if "[emerg]" in line or "[alert]" in line or "failed" in line]
    return "; ".join(errors or lines) or f"nginx exited with {result.returncode}"


def config_test(conf_path: Path, prefix: Path) -> None:
    """`nginx -t` on the file; raises NginxError with nginx's reason when it is refused."""
    result = _run(["-t", "-q", "-c", str(conf_path)], prefix)
    if result.returncode != 0:
        raise NginxError(_reason(result))


@dataclass
class NginxInstance:
    """A private nginx (own prefix dir, pid, logs, temp paths) that never touches the system one."""

    options: NginxOptions
    # A plane that reloads itself when its route file changes (strangler_proxy.nginx.follow): the control plane
    # only waits for its digest, never signals or starts it (it may run in another container).
    reloads_itself: bool = False
    digest_url: str | None = None  # where others ask its digest; None: http://<admin_listen>

    @property
    def prefix(self) -> Path:
        return Path(self.options.runtime_dir).resolve()

    @property
    def conf_path(self) -> Path:
        return self.prefix / CONF_NAME

    @property
    def pid_path(self) -> Path:
        return self.prefix / "nginx.pid"

    def master_pid(self) -> int | None:
        """The running master's pid, or None (no pid file, dead, or the pid now belongs to another program)."""
        try:
            pid = int(self.pid_path.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists() and not cmdline.read_bytes().startswith(b"nginx: master process"):
            return None  # a stale pid file after a crash: never signal an unrelated process
        return pid

    def install(self, table: RouteTable) -> Path:
        """Render, test the candidate, then atomically replace the live file. A refused render changes nothing."""
        self.prefix.mkdir(parents=True, exist_ok=True)
        for kind in TEMP_KINDS:
            temp = temp_path(self.options, kind)
            # In a shared temp dir: never let nginx (as root) take over a directory or symlink someone else made.
            if temp.parent != self.prefix and (temp.is_symlink() or (temp.exists() and temp.stat().st_uid not in (
                    os.geteuid(), _uid(self.options.user)))):
                raise NginxError(f"{temp} was made by another user; remove it and retry")
        candidate = self.prefix / f"{CONF_NAME}.candidate"
        candidate.write_text(render_nginx(table, self.options), encoding="utf-8")
        try:
            config_test(candidate, self.prefix)
        finally:
            text = candidate.read_text(encoding="utf-8")
            candidate.unlink(missing_ok=True)
        file_write_atomic(path=self.conf_path, data=text)
        return self.conf_path

    def start(self) -> int:
        """Start the master (daemonised) on the installed config; returns its pid."""
        result = _run(["-c", str(self.conf_path)], self.prefix)
        if result.returncode != 0:
            raise NginxError(_reason(result))
        deadline = time.monotonic() + 10
        while (pid := self.master_pid()) is None:
            if time.monotonic() > deadline:
                raise NginxError(f"nginx did not write {self.pid_path}; see {self.prefix / 'error.log'}")
            time.sleep(0.02)
        return pid

    def reload(self, table: RouteTable) -> str:
        """Render → test → write → `nginx -s reload` (or start when not running). Returns what was done.

        A table read from a file registers this plane as serving that file (strangler_proxy.planes).
        """
        self.install(table)
        if self.master_pid() is None:
            pid = self.start()
            done = f"started nginx (pid {pid}) with {self.conf_path}"
        else:
            result = _run(["-c", str(self.conf_path), "-s", "reload"], self.prefix)
            if result.returncode != 0:
                raise NginxError(_reason(result))
            done = f"reloaded nginx (pid {self.master_pid()}) with {self.conf_path}"
        if Path(table.source).is_file():
            plane_register(record=self.plane_record(routes=Path(table.source)))
        return done

    def plane_record(self, *, routes: Path) -> PlaneRecord:
        options = {**asdict(self.options), "runtime_dir": str(self.prefix), "hosts": list(self.options.hosts),
                   "override_secret": bool(self.options.override_secret)}  # whether overrides were on, not the secret
        admin = self.options.admin_listen
        digest_url = self.digest_url or (f"http://{admin}{DIGEST_PATH}" if admin else None)
        return PlaneRecord(kind="nginx", routes=str(routes.resolve()), key=str(self.prefix), options=options,
                           digest_url=digest_url, reloads_itself=self.reloads_itself)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully; the plane is no longer registered (plans stop reloading it)."""
        plane_unregister(kind="nginx", key=str(self.prefix))
        pid = self.master_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGQUIT)  # graceful: finish in-flight requests
        deadline = time.monotonic() + timeout
        while self.master_pid() is not None:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGTERM)
                break
            time.sleep(0.02)


def nginx_instance_of(*, record: PlaneRecord, override_secret: str | None) -> NginxInstance:
    """The registered plane's instance, rendering as it was started; NginxError when its override secret is missing
    (reloading without it would silently switch signed overrides off)."""
    options = dict(record.options or {})
    if options.pop("override_secret", False) and not override_secret:
        raise NginxError(f"the nginx plane in {record.key} verifies override tokens, but this process has no "
                         "override secret: set it (the route file's override.secret_env) before changing routes")
    options["runtime_dir"] = Path(options["runtime_dir"])
    options["hosts"] = tuple(options["hosts"])
    return NginxInstance(NginxOptions(**options, override_secret=override_secret))
