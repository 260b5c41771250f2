"""Exit 0 when the named Celery worker node sent a heartbeat lately (the worker container's healthcheck)."""
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from webapp.recognition.models import WorkerHeartbeat
from webapp.recognition.queue_stats import ALIVE


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("name", help="the node name, e.g. worker@<hostname>")

    def handle(self, name, **options):
        beat = WorkerHeartbeat.objects.filter(name=name).first()
        if beat is None or beat.seen_at < timezone.now() - ALIVE:
            raise CommandError(f"{name} has sent no heartbeat in the last {int(ALIVE.total_seconds())} s")
        self.stdout.write(f"{name} alive ({beat.processes} processes, seen {beat.seen_at:%H:%M:%S})")
