"""`strangler-proxy`: check the route file, explain a decision, print the table, render and reload nginx.

Subcommands that live in their own module (e.g. `run`, the mitmproxy plane) are listed in EXTERNAL_COMMANDS:
the module defines `add_arguments(parser)` and `main(args) -> int`, and imports heavy things inside main().
"""

from __future__ import annotations

import argparse
import importlib
import os
import secrets
import sys
from pathlib import Path

from servicekit.cli_parser import OneLineErrorParser
from servicekit.optional import MissingExtra
from strangler_proxy.loader import ROUTES_ENV, RouteFileError, load_route_file, route_file_path
from strangler_proxy.override import MAX_LIFETIME_HOURS, METHOD_CLASSES, override_token
from strangler_proxy.routing import (
    OpsHidden,
    PathRejected,
    RequestInfo,
    client_address,
    decide,
    parse_cookie_header,
    sticky_cookie_wanted,
)
from strangler_proxy.spec import RouteTable

EXTERNAL_COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("strangler_proxy.run", "run the mitmproxy plane (mitmdump with the strangler addon)"),
    "nginx-metrics": ("strangler_proxy.nginx.exporter", "serve the nginx plane's /metrics (tails its metrics log)"),
}
DEFAULT_NGINX_LISTEN = "127.0.0.1:8088"


def _routes_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--routes", metavar="FILE", default=None,
                        help=f"route file (default: ${ROUTES_ENV}, else strangler_proxy/routes.yaml)")


def _override_secret(table: RouteTable) -> str | None:
    return os.environ.get(table.override.secret_env) or None


def _listen(value: str) -> str:
    return f"127.0.0.1:{value}" if value.isdigit() else value


def _workers(value: str) -> str:
    if value != "auto" and not (value.isdigit() and int(value) > 0):
        raise argparse.ArgumentTypeError("a positive number or 'auto'")
    return value


def _runtime_dir(value: str | None) -> Path:
    if value:
        return Path(value)
    from servicekit.env import VAR_DIR

    return VAR_DIR / "nginx"


def cmd_schema(args: argparse.Namespace) -> int:
    from strangler_proxy.schema import route_file_schema, schema_text

    return schema_print(schema_text(route_file_schema()), out=args.out)


def schema_print(text: str, *, out: str | None) -> int:
    """Print a schema, or write it to ``out`` (one error line and exit 2 when that fails)."""
    if out is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"error: {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    table = load_route_file(args.file or args.routes)
    if args.nginx:
        import tempfile

        from strangler_proxy.nginx.control import NginxError, config_test
        from strangler_proxy.nginx.render import NginxOptions, render_nginx

        with tempfile.TemporaryDirectory(prefix="strangler-nginx-check-") as tmp:
            conf = Path(tmp) / "nginx.conf"
            conf.write_text(render_nginx(table, NginxOptions(runtime_dir=Path(tmp),
                                                             override_secret=_override_secret(table))))
            try:
                config_test(conf, Path(tmp))
            except NginxError as exc:
                print(f"{table.source}: nginx refuses the rendered config: {exc}", file=sys.stderr)
                return 1
    print(f"ok: {table.source}: {len(table.upstreams)} upstreams, {len(table.routes)} routes "
          f"(sha256 {table.digest[:12]})" + ("; nginx -t accepts the rendered config" if args.nginx else ""))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    table = load_route_file(args.routes)
    headers: dict[str, str] = {}
    for raw in args.header:
        name, sep, value = raw.partition(":")
        if not sep or not name.strip():
            print(f"error: -H expects 'Name: value', got {raw!r}", file=sys.stderr)
            return 2
        headers[name.strip().lower()] = value.strip()
    cookies = parse_cookie_header(headers.get("cookie", ""))
    for raw in args.cookie:
        name, sep, value = raw.partition("=")
        if not sep:
            print(f"error: --cookie expects name=value, got {raw!r}", file=sys.stderr)
            return 2
        cookies[name.strip()] = value.strip()
    # A first visit: the planes key on the id they set as the cookie (a new one each time), as here.
    fresh_uid = secrets.token_hex(16) if sticky_cookie_wanted(table, cookies=cookies, headers=headers) else ""
    client = client_address(args.client, headers.get("x-forwarded-for"), table.settings.trusted_proxies)
    request = RequestInfo(method=args.method.upper(), path=args.path, headers=headers, cookies=cookies,
                          client_addr=client, fresh_uid=fresh_uid)
    try:
        decision = decide(table, request, override_secret=_override_secret(table))
    except PathRejected as exc:
        print(f"rejected: 400 Bad Request ({exc})")
        return 0
    except OpsHidden as exc:
        print(f"rejected: 404 Not Found ({exc})")
        return 0
    route = decision.route
    rows = [
        ("route", f"{route.label} (line {route.line}, {route.match}, mode {route.mode})" if route else "default"),
        ("path", decision.path),
        ("upstream", decision.primary),
        ("shadow", decision.shadow or "-"),
        ("fallback", decision.fallback or "-"),
        ("bucket", "-" if decision.bucket is None else str(decision.bucket)),
        ("override", "yes" if decision.overridden else "no"),
        ("client", client),
        ("cookie", f"sets {table.sticky.cookie}={fresh_uid}" if fresh_uid else "-"),
        ("reason", decision.reason),
    ]
    for name, value in rows:
        print(f"{name + ':':<10} {value}")
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    table = load_route_file(args.routes)
    print(f"# {table.source} (sha256 {table.digest[:12]})")
    for up in table.upstreams.values():
        role = "  (monolith)" if up.name == table.monolith else ""
        print(f"upstream {up.name:<12} {up.url}{role}")
    header = ("line", "match", "prefix", "methods", "mode", "service", "weight", "shadow", "fallback", "timeout")
    rows = [header]
    for r in table.routes:
        shadow = "-"
        if r.shadow is not None:
            shadow = f"{r.shadow.target or 'auto'}@{r.shadow.sample:g}" + ("+unsafe" if r.shadow.unsafe_methods else "")
        rows.append((
            str(r.line), r.match, r.prefix, ",".join(sorted(r.methods)) if r.methods else "*", r.mode,
            r.service or "-", f"{r.weight}%" if r.mode == "canary" else "-", shadow, "yes" if r.fallback else "no",
            f"{r.timeout:g}s",
        ))
    rows.append(("-", "prefix", "(unmatched)", "*", "monolith", "-", "-", "-", "no", "30s"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _nginx_options(args: argparse.Namespace, table: RouteTable):
    from strangler_proxy.nginx.render import NginxOptions

    hosts = tuple(h.strip() for h in args.hosts.split(",") if h.strip())
    workers = args.workers if args.workers == "auto" else int(args.workers)
    return NginxOptions(runtime_dir=_runtime_dir(args.runtime_dir).resolve(), listen=_listen(args.listen),
                        override_secret=_override_secret(table), hosts=hosts or ("*",), worker_processes=workers,
                        admin_listen=_listen(args.admin_listen) if args.admin_listen else None)


def cmd_render_nginx(args: argparse.Namespace) -> int:
    from servicekit.files import file_write_atomic
    from strangler_proxy.nginx.render import render_nginx

    table = load_route_file(args.routes)
    text = render_nginx(table, _nginx_options(args, table))
    if args.out:
        out = Path(args.out)
        file_write_atomic(path=out, data=text)
        print(f"wrote {out}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_nginx_reload(args: argparse.Namespace) -> int:
    from strangler_proxy.nginx.control import NginxError, NginxInstance

    table = load_route_file(args.routes)
    instance = NginxInstance(_nginx_options(args, table))
    try:
        print(instance.reload(table))
    except NginxError as exc:
        print(f"error: nginx refused the new config, the running one is unchanged: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_nginx_run(args: argparse.Namespace) -> int:
    from strangler_proxy.nginx.follow import plane_run

    table = load_route_file(args.routes)
    if args.poll <= 0:
        print("error: --poll must be more than 0 seconds", file=sys.stderr)
        return 2
    return plane_run(routes=Path(table.source), options=_nginx_options(args, table), admin_url=args.admin_url,
                     poll=args.poll)


def cmd_nginx_stop(args: argparse.Namespace) -> int:
    from strangler_proxy.nginx.control import NginxInstance
    from strangler_proxy.nginx.render import NginxOptions

    instance = NginxInstance(NginxOptions(runtime_dir=_runtime_dir(args.runtime_dir).resolve()))
    pid = instance.master_pid()
    instance.stop()
    print(f"stopped nginx (pid {pid})" if pid else "nginx was not running")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Which planes serve the route file, and whether each serves it as it is now; exit 0 only when all do."""
    from strangler_proxy.planes import plane_served_digest, planes_for

    path = route_file_path(args.file or args.routes)
    table = load_route_file(path)
    print(f"{path} (sha256 {table.digest[:12]})")
    records = planes_for(routes=path)
    if not records:
        print("no running plane serves this file")
        return 1
    current = True
    for record in records:
        served = plane_served_digest(record=record)
        if record.digest_url is None:
            state = "cannot say (started without --admin-listen)"
        elif served is None:
            state = f"not answering at {record.digest_url}"
        elif served == table.digest:
            state = "current"
        else:
            state = f"STALE: serves {served[:12]}"
        current = current and served == table.digest
        print(f"{record.kind:<9} {record.key}  {state}")
    return 0 if current else 1


def cmd_token(args: argparse.Namespace) -> int:
    table = load_route_file(args.routes)
    secret = _override_secret(table)
    if not secret:
        print(f"error: ${table.override.secret_env} is not set", file=sys.stderr)
        return 2
    if args.upstream not in table.upstreams:
        print(f"error: unknown upstream {args.upstream!r} (one of {', '.join(table.upstreams)})", file=sys.stderr)
        return 2
    try:
        token = override_token(secret, args.upstream, methods=args.methods, ttl=args.ttl)
    except ValueError as exc:
        print(f"error: --ttl: {exc}", file=sys.stderr)
        return 2
    print(f"{table.override.header}: {token}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="strangler-proxy", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check", help="validate the route file (exit 2 with file:line: field: message)")
    p.add_argument("file", nargs="?", default=None)
    p.add_argument("--nginx", action="store_true", help="also render the nginx config and run nginx -t on it")
    _routes_arg(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("explain", help="print the routing decision for one request")
    p.add_argument("method")
    p.add_argument("path", help="request target as sent, e.g. '/api/items/?page=2'")
    p.add_argument("-H", "--header", action="append", default=[], metavar="'Name: value'")
    p.add_argument("--cookie", action="append", default=[], metavar="name=value")
    p.add_argument("--client", default="127.0.0.1", metavar="IP", help="client address (sticky key of last resort)")
    _routes_arg(p)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("schema", help="print the route file's JSON Schema (editors can validate route files with it)")
    p.add_argument("--out", metavar="FILE", help="write it to FILE instead (the committed copy: "
                                                 "strangler_proxy/route-file.schema.json)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("table", help="print the route table")
    _routes_arg(p)
    p.set_defaults(func=cmd_table)

    for name, func, what in (
        ("render-nginx", cmd_render_nginx, "print (or --out FILE) the nginx config"),
        ("nginx-reload", cmd_nginx_reload, "render, write, nginx -t, reload (start when not running)"),
        ("nginx-run", cmd_nginx_run, "run nginx in the foreground, reloading it when the route file changes"),
    ):
        p = sub.add_parser(name, help=what)
        if name == "render-nginx":
            p.add_argument("--out", metavar="FILE", default=None)
        if name == "nginx-run":
            p.add_argument("--admin-url", default=None, metavar="URL",
                           help="where other hosts reach --admin-listen (e.g. http://proxy:8082), for plans and status")
            p.add_argument("--poll", type=float, default=1.0, metavar="SECONDS",
                           help="how often the route file is checked for changes (default: %(default)s)")
        p.add_argument("--listen", default=DEFAULT_NGINX_LISTEN, metavar="PORT|HOST:PORT")
        p.add_argument("--workers", default="auto", type=_workers, metavar="N|auto",
                       help="nginx worker processes (default: auto, one per core)")
        p.add_argument("--hosts", default="localhost,127.0.0.1,[::1]", metavar="NAME,...",
                       help="Host names clients may address, '*' for any; others get 421 (default: %(default)s)")
        p.add_argument("--runtime-dir", default=None, metavar="DIR",
                       help="nginx prefix dir: pid, logs, temp files (default: var/nginx)")
        p.add_argument("--admin-listen", default=None, metavar="PORT|HOST:PORT",
                       help="admin listener answering the served route file digest (for status and plans)")
        _routes_arg(p)
        p.set_defaults(func=func)

    p = sub.add_parser("nginx-stop", help="stop the private nginx instance")
    p.add_argument("--runtime-dir", default=None, metavar="DIR")
    p.set_defaults(func=cmd_nginx_stop)

    p = sub.add_parser("status", help="which planes serve the route file, and whether each serves it as it is now")
    p.add_argument("file", nargs="?", default=None)
    _routes_arg(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("token", help="print a signed, expiring override header for an upstream")
    p.add_argument("upstream")
    p.add_argument("--methods", choices=METHOD_CLASSES, default="safe",
                   help="safe: GET, HEAD and OPTIONS only (default); any: every method")
    p.add_argument("--ttl", type=float, default=3600, metavar="SECONDS",
                   help=f"lifetime, rounded up to the next whole hour (UTC), at most {MAX_LIFETIME_HOURS} h "
                        "(default 3600)")
    _routes_arg(p)
    p.set_defaults(func=cmd_token)

    for name, (module_name, what) in EXTERNAL_COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # that plane is not installed in this checkout
        p = sub.add_parser(name, help=what)
        module.add_arguments(p)
        p.set_defaults(func=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except RouteFileError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except MissingExtra as exc:
        print(f"strangler-proxy: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
