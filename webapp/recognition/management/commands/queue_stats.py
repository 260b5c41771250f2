"""Print the queue depth, jobs per second and backlog per worker; with --cloudwatch, publish them."""
import json
import time

from django.core.management.base import BaseCommand

from webapp.recognition import queue_stats


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--cloudwatch", action="store_true", help="put the figures into CloudWatch as metrics")
        parser.add_argument("--namespace", default="HandwrittenArithmetic")
        parser.add_argument("--deployment", default="production", help="the Deployment dimension")
        parser.add_argument("--every", type=float, default=0, help="repeat every N seconds (0: once)")

    def handle(self, cloudwatch, namespace, deployment, every, **options):
        while True:
            stats = queue_stats.collect()
            self.stdout.write(json.dumps(stats.as_dict()))
            if cloudwatch:
                queue_stats.publish(stats, namespace, deployment)
            if not every:
                return
            time.sleep(every)
