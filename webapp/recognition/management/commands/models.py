"""Model versions in a deployment (MODEL_REGISTRY=database): the same commands as `python -m models`.

    manage.py models list | show [VERSION] | upload FOLDER | promote VERSION [--force] | rollback | history

`python -m models ...` hands over to this command when MODEL_REGISTRY=database.
"""
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from models import registry
from webapp.recognition import model_store
from webapp.recognition.models import ModelVersion


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="command", required=True)
        commands.add_parser("list")
        show = commands.add_parser("show")
        show.add_argument("version", nargs="?")
        upload = commands.add_parser("upload", help="register a trained version folder (uploads its files)")
        upload.add_argument("folder", type=Path)
        promote = commands.add_parser("promote")
        promote.add_argument("version")
        promote.add_argument("--force", action="store_true", help="even below the real-handwriting floors")
        commands.add_parser("rollback")
        commands.add_parser("history")

    def handle(self, command, **options):
        if not model_store.in_database():
            raise CommandError("MODEL_REGISTRY is not 'database': use `python -m models` on the models/ folder")
        try:
            if command == "list":
                active = model_store.active_version()
                for row in ModelVersion.objects.all():
                    real = ((row.metrics or {}).get("real_handwriting") or {}).get("report") or {}
                    blockers = registry.promotion_blockers(row.metrics)
                    note = f"real {real['all']:.4f}" if real else "no real-handwriting figures"
                    self.stdout.write(f"{'*' if row.version == active else ' '} {row.version}  {note}"
                                      + (f"  below floors: {', '.join(b.split(':')[0] for b in blockers)}" if blockers else ""))
            elif command == "show":
                version = options["version"] or model_store.active_version()
                row = ModelVersion.objects.filter(pk=version).first()
                if row is None:
                    raise model_store.ModelStoreError(f"no such model version: {version}")
                self.stdout.write(json.dumps({"version": row.version, "files": row.files, "metrics": row.metrics,
                                              "problems": model_store.verify(version)}, indent=2))
            elif command == "upload":
                row = model_store.register_folder(options["folder"])
                self.stdout.write(f"registered {row.version}")
            elif command == "promote":
                previous = model_store.promote(options["version"], force=options["force"])
                self.stdout.write(f"ACTIVE: {previous or '(none)'} -> {options['version']}")
            elif command == "rollback":
                self.stdout.write(f"ACTIVE rolled back to {model_store.rollback()}")
            elif command == "history":
                for entry in model_store.history():
                    self.stdout.write(f"{entry['at']}  {entry['action']:<8} {entry['previous'] or '(none)'} -> {entry['version']}"
                                      + ("  (forced)" if entry["forced"] else ""))
        except model_store.ModelStoreError as error:
            raise CommandError(str(error)) from None
