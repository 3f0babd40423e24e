"""Optional dependencies: import one, or fail with a one-line error that names the extra to install.

The toolkit's wheel (`strangler-fig`) installs only what every plane needs; the proxy's mitmproxy, the Celery
relay, PostgreSQL's driver and the service settings' OpenAPI generator come with extras
(`pip install 'strangler-fig[proxy]'`, `[celery]`, `[postgres]`, `[service]`).
"""

from __future__ import annotations

import importlib
from types import ModuleType

DISTRIBUTION = "strangler-fig"


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message says which extra brings it."""


def optional_import(module: str, *, extra: str, needed_for: str) -> ModuleType:
    """Import `module`; if it (not something it imports) is missing, raise MissingExtra naming `extra`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        # only the optional package itself being absent is ours to explain; a broken install stays as it is
        if exc.name is None or not (module == exc.name or module.startswith(exc.name + ".")):
            raise
        raise missing_extra(package=module.split(".")[0], extra=extra, needed_for=needed_for) from exc


def missing_extra(*, package: str, extra: str, needed_for: str) -> MissingExtra:
    return MissingExtra(f"{needed_for} needs {package}, which is not installed: pip install '{DISTRIBUTION}[{extra}]'",
                        name=package)
