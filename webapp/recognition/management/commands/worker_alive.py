"""Exit 0 when the named Celery worker node sent a heartbeat lately and the model version it
reads exists (the worker container's healthcheck).

A worker whose MODEL_VERSION names no version gives every job back (workers/job_runner.py):
alive, but of no use, so the orchestrator is told.
"""
from django.core.management.base import BaseCommand, CommandError

from models.registry import RegistryError
from webapp.recognition import model_store
from webapp.recognition.models import WorkerHeartbeat
from webapp.recognition.queue_stats import ALIVE
from webapp.recognition.services import database_now


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("name", help="the node name, e.g. worker@<hostname>")

    def handle(self, name, **options):
        beat = WorkerHeartbeat.objects.filter(name=name).first()
        if beat is None or beat.seen_at < database_now() - ALIVE:
            raise CommandError(f"{name} has sent no heartbeat in the last {int(ALIVE.total_seconds())} s")
        try:
            version = model_store.wanted_version()
        except (RegistryError, model_store.ModelStoreError) as error:
            raise CommandError(f"{name} has no model to read with: {error}") from error
        if not model_store.exists(version):
            raise CommandError(f"{name} reads with model {version}, which does not exist")
        self.stdout.write(f"{name} alive ({beat.processes} processes, seen {beat.seen_at:%H:%M:%S}), model {version}")
