"""``python -m passerelle.collect --project DIR --port N``: the collector alone (tests, ops)."""

from __future__ import annotations

import argparse
import sys

from passerelle.collect import serve
from passerelle.errors import PasserelleError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m passerelle.collect")
    parser.add_argument("--project", default=".", help="project folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--no-loader", action="store_true",
                        help="spool only; load with `passerelle run` later")
    args = parser.parse_args(argv)
    from passerelle.core import open_project

    try:
        project = open_project(args.project)
        serve(project, args.host, args.port, loader=not args.no_loader)
    except PasserelleError as exc:
        print(f"error: {exc.reason}\n{exc.instruction or ''}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
