"""Replace a file atomically: readers (the proxies polling a route file, every project reading the ownership file,
nginx loading its config) see the old content or the new one, never half of it.

One helper for every writer: a temporary file in the same folder (so the rename stays on one file system),
flushed and fsync-ed, given the replaced file's permissions (else what a plain ``open()`` would give), then
``os.replace``-d over the target. On any error the temporary file is removed and the target is untouched.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    """The process's umask, read without changing it (os.umask(0) would, for every thread, for a moment)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def file_write_atomic(*, path: Path | str, data: str | bytes, durable: bool = True) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically; ``durable`` also fsyncs it before the rename.

    Creates the parent folder when missing. Returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o666 & ~_umask()  # mkstemp makes 0600: give a new file what open() would have
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
