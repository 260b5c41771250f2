"""AWS integrations against `moto server` (a local S3 and CloudWatch): S3 storage for a whole
stack, and the queue figures an autoscaler tracks, published to CloudWatch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.images import line_png
from tests.stack import REPO, Stack, free_port, start_process, wait_until

pytestmark = pytest.mark.slow

AWS_TEST_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    folder = tmp_path_factory.mktemp("moto")
    port = free_port()
    server = start_process("moto", [str(REPO / ".venv/bin/moto_server"), "-H", "127.0.0.1", "-p", str(port)], {**os.environ, **AWS_TEST_ENV}, folder)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _up(url), 30, what="moto server")
    yield url
    server.stop()


def _up(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code < 500
    except requests.ConnectionError:
        return False


def _aws(service: str, url: str):
    import boto3

    return boto3.client(service, endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")


def test_a_whole_stack_on_s3_storage(moto, tmp_path):
    s3 = _aws("s3", moto)
    s3.create_bucket(Bucket="arith-media")
    stack = Stack.start(tmp_path, AWS_STORAGE_BUCKET_NAME="arith-media", AWS_S3_ENDPOINT_URL=moto, AWS_S3_REGION_NAME="us-east-1", **AWS_TEST_ENV)
    try:
        created = subprocess.run([sys.executable, "webapp/manage.py", "issue_token", "s3-user", "--create"], cwd=REPO,
                                 env=stack.env, capture_output=True, text=True, timeout=120)
        headers = {"Authorization": f"Token {created.stdout.strip()}"}
        response = requests.post(stack.api("jobs/"), headers=headers, files={"image": ("l.png", line_png("12+3*4", 1), "image/png")})
        assert response.status_code == 202
        url = response.headers["Location"]
        job = wait_until(lambda: (b := requests.get(url, headers=headers).json())["status"] in ("succeeded", "failed") and b, 90, what="the job on S3")
        assert job["status"] == "succeeded" and job["result"]["lines"][0]["value"] == 24
        boxes = job["steps"]["boxes"]  # an S3 presigned link, straight to the bucket: no web container, no token
        assert boxes.startswith(f"{moto}/arith-media/media/jobs/{job['id']}/") and "Signature=" in boxes
        assert requests.get(boxes).content[:4] == b"\x89PNG"

        def keys(prefix: str) -> list[str]:
            return [o["Key"] for o in s3.list_objects_v2(Bucket="arith-media", Prefix=prefix).get("Contents", [])]

        stored = keys(f"media/jobs/{job['id']}/")
        assert len(stored) == 6 and any(k.endswith("/input.png") for k in stored)  # input, 4 steps, crop sheet
        assert sorted(k.rsplit("/", 1)[1] for k in keys("media/models/v0002/")) == ["config.json", "labels.json", "metrics.json", "model.keras"]
        assert requests.delete(url, headers=headers).status_code == 204
        wait_until(lambda: not keys(f"media/jobs/{job['id']}/"), 20, what="the objects to go")
    finally:
        stack.stop()


def test_queue_figures_are_printed_and_published_to_cloudwatch(stack, moto):
    from django.utils import timezone as django_timezone

    from webapp.recognition.models import Job

    client = stack.client()
    # Five jobs owed and not yet sent ("sent an hour from now", so the sweep leaves them queued).
    owed = [Job.objects.create(owner=client.user, image=f"jobs/owed-{i}/input.png", image_sha256="0" * 64,
                               enqueued_at=django_timezone.now() + timedelta(hours=1)) for i in range(5)]
    try:
        env = {**{k: v for k, v in stack.env.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}, **AWS_TEST_ENV, "AWS_ENDPOINT_URL": moto}
        result = subprocess.run([sys.executable, "webapp/manage.py", "queue_stats", "--cloudwatch", "--deployment", "ci"],
                                cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        assert figures["queued"] >= 5 and figures["worker_processes"] >= 1 and figures["broker_depth"] is not None
        assert figures["backlog_per_worker"] == round((figures["queued"] + figures["running"]) / figures["worker_processes"], 3)
    finally:
        Job.objects.filter(pk__in=[job.pk for job in owed]).delete()

    cloudwatch = _aws("cloudwatch", moto)
    names = {m["MetricName"] for m in cloudwatch.list_metrics(Namespace="HandwrittenArithmetic")["Metrics"]}
    assert {"BacklogPerWorker", "QueuedJobs", "JobsPerSecond", "WorkerProcesses", "BrokerDepth"} <= names
    now = datetime.now(timezone.utc)
    points = cloudwatch.get_metric_statistics(
        Namespace="HandwrittenArithmetic", MetricName="BacklogPerWorker", Dimensions=[{"Name": "Deployment", "Value": "ci"}],
        StartTime=now - timedelta(minutes=5), EndTime=now + timedelta(minutes=1), Period=60, Statistics=["Maximum"],
    )["Datapoints"]
    assert points and points[0]["Maximum"] == figures["backlog_per_worker"]


def test_the_worker_healthcheck_reads_the_heartbeat(stack):
    import socket

    env = {k: v for k, v in stack.env.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    alive = subprocess.run(["deploy/worker-healthcheck.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert alive.returncode == 0 and f"worker@{socket.gethostname()} alive" in alive.stdout, alive.stderr
    missing = subprocess.run(["deploy/worker-healthcheck.sh"], cwd=REPO, env={**env, "WORKER_NAME": "nobody"}, capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "has sent no heartbeat" in missing.stderr
