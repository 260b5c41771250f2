"""How busy the workers are: the figures an autoscaler tracks.

- ``broker_depth``: messages waiting on the ``inference`` queue;
- ``queued`` and ``running``: jobs by state in the database (what is owed, even if a message was lost);
- ``jobs_per_second``: jobs finished over the last minute;
- ``worker_processes``: Celery pool processes of the workers alive (their heartbeats);
- ``backlog_per_worker``: (queued + running) / worker processes — the target-tracking metric.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta

from webapp.recognition.models import Job, WorkerHeartbeat
from webapp.recognition.services import INFERENCE_QUEUE, database_now

WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class QueueStats:
    broker_depth: int | None
    queued: int
    running: int
    jobs_per_second: float
    worker_processes: int
    backlog_per_worker: float

    def as_dict(self) -> dict:
        return asdict(self)


def broker_depth() -> int | None:
    """Messages waiting on the inference queue; None when the broker cannot be reached."""
    from kombu.exceptions import ChannelError

    from workers.celery_app import app

    try:
        with app.connection_for_read() as connection:
            channel = connection.default_channel
            if hasattr(channel, "_size"):
                # Redis: the length of the queue's lists. A passive queue_declare looks for the key
                # without CELERY_BROKER_KEY_PREFIX (kombu 5.5), so with a prefix it found nothing.
                return int(channel._size(INFERENCE_QUEUE))
            try:
                return channel.queue_declare(queue=INFERENCE_QUEUE, passive=True).message_count
            except ChannelError:  # no such queue yet: nothing waits
                return 0
    except Exception:  # the broker is down: no figure, not a crash
        return None


ALIVE = timedelta(seconds=30)  # three missed heartbeats


def worker_processes() -> int:
    """Processes of the worker nodes that sent a heartbeat lately (see workers/heartbeat.py)."""
    recent = WorkerHeartbeat.objects.filter(seen_at__gte=database_now() - ALIVE)  # the clock the heartbeats were written with
    return sum(recent.values_list("processes", flat=True))


def collect() -> QueueStats:
    now = database_now()  # the clock jobs' finished_at are written with
    queued = Job.objects.filter(status=Job.Status.QUEUED).count()
    running = Job.objects.filter(status=Job.Status.RUNNING).count()
    finished = Job.objects.filter(finished_at__gte=now - WINDOW).count()
    processes = worker_processes()
    return QueueStats(
        broker_depth=broker_depth(), queued=queued, running=running,
        jobs_per_second=round(finished / WINDOW.total_seconds(), 3), worker_processes=processes,
        backlog_per_worker=round((queued + running) / max(1, processes), 3),
    )


CLOUDWATCH_METRICS = {
    "QueuedJobs": ("queued", "Count"),
    "RunningJobs": ("running", "Count"),
    "JobsPerSecond": ("jobs_per_second", "Count/Second"),
    "WorkerProcesses": ("worker_processes", "Count"),
    "BacklogPerWorker": ("backlog_per_worker", "None"),
}


def publish(stats: QueueStats, namespace: str, deployment: str) -> None:
    """Put the figures into CloudWatch (credentials from the instance role; endpoint from AWS_ENDPOINT_URL*)."""
    import boto3

    dimensions = [{"Name": "Deployment", "Value": deployment}]
    data = [
        {"MetricName": name, "Dimensions": dimensions, "Value": float(getattr(stats, field)), "Unit": unit}
        for name, (field, unit) in CLOUDWATCH_METRICS.items()
    ]
    if stats.broker_depth is not None:
        data.append({"MetricName": "BrokerDepth", "Dimensions": dimensions, "Value": float(stats.broker_depth), "Unit": "Count"})
    boto3.client("cloudwatch").put_metric_data(Namespace=namespace, MetricData=data)
