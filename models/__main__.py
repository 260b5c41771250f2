"""python -m models list|show|promote|rollback|history — the model registry CLI."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from models import registry


def main(argv: list[str] | None = None) -> int:
    if os.environ.get("MODEL_REGISTRY") == "database":
        # A deployment keeps the pointer in its database and the files in shared storage:
        # the same commands, answered by Django (this package stays free of it).
        manage = Path(__file__).resolve().parent.parent / "webapp" / "manage.py"
        os.execv(sys.executable, [sys.executable, str(manage), "models", *(sys.argv[1:] if argv is None else argv)])
    parser = argparse.ArgumentParser(prog="python -m models", description="Model versions and the ACTIVE pointer.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="versions, with the active one marked")
    show = commands.add_parser("show", help="config and metrics of a version")
    show.add_argument("version", nargs="?", help="default: the active version")
    promote = commands.add_parser("promote", help="make a version the serving model")
    promote.add_argument("version")
    promote.add_argument("--force", action="store_true", help="promote even below the real-handwriting floors")
    commands.add_parser("rollback", help="go back to the version active before the current one")
    commands.add_parser("history", help="promotions and rollbacks, oldest first")
    args = parser.parse_args(argv)

    try:
        if args.command == "list":
            root = registry.models_dir()
            active = None
            try:
                active = registry.active_version(root)
            except registry.RegistryError:
                pass
            for version in registry.list_versions(root):
                metrics = registry.describe(version, root)["metrics"] or {}
                held_out = (metrics.get("test") or {}).get("mnist_accuracy")
                real = ((metrics.get("real_handwriting") or {}).get("report") or {}).get("all")
                figures = []
                if held_out is not None:
                    figures.append(f"mnist-test {held_out:.4f}")
                if real is not None:
                    figures.append(f"real {real:.4f}")
                print(f"{'*' if version == active else ' '} {version}  {'  '.join(figures)}")
        elif args.command == "show":
            print(json.dumps(registry.describe(args.version or registry.active_version()), indent=2))
        elif args.command == "promote":
            previous = registry.promote(args.version, force=args.force)
            if previous == args.version:
                print(f"ACTIVE: {args.version} already serves; nothing changed")
            else:
                print(f"ACTIVE: {previous or '(none)'} -> {args.version}")
        elif args.command == "rollback":
            print(f"ACTIVE rolled back to {registry.rollback()}")
        elif args.command == "history":
            for entry in registry.history():
                print(f"{entry.get('at', '?')}  {entry['action']:<8} {entry.get('previous') or '(none)'} -> {entry['version']}")
    except registry.RegistryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
