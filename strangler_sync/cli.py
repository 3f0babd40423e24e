"""``strangler-sync``: Django-free command line for operators (verify two projects over HTTP).

    strangler-sync verify --aggregate product --source http://monolith:8000 --follower http://catalog:8001

Exit status 0 when both sides hold the same rows, 1 when they differ, 2 on errors. To repair, run
``manage.py sync_verify ... --repair`` in the owning project (it re-emits from its own database).
"""

from __future__ import annotations

import json
import sys

from servicekit.cli_parser import OneLineErrorParser
from strangler_sync.verify import VerifyError, verify_aggregate


def build_parser() -> OneLineErrorParser:
    parser = OneLineErrorParser(prog="strangler-sync", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    verify = commands.add_parser("verify", help="compare an aggregate between source and follower")
    verify.add_argument("--aggregate", required=True, help="the aggregate's name, as both sides declare it")
    verify.add_argument("--source", required=True, metavar="URL", help="base URL of the owner")
    verify.add_argument("--follower", required=True, metavar="URL", help="base URL of the follower")
    verify.add_argument("--buckets", type=int, default=256, help="checksum buckets of the first pass (default 256)")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = verify_aggregate(source=args.source, follower=args.follower, aggregate=args.aggregate,
                                  buckets=args.buckets)
    except VerifyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(f"{args.aggregate}: source {result.source_count} rows, follower {result.follower_count} rows, "
              f"{result.differences} difference(s) in {result.seconds:.2f}s")
        for label in ("missing", "extra", "changed"):
            ids = getattr(result, label)
            if ids:
                print(f"  {label} ({len(ids)}): {' '.join(map(str, ids[:200]))}")
    return 1 if result.differences else 0


if __name__ == "__main__":
    sys.exit(main())
