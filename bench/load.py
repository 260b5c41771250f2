"""Load benchmark: the real stack under offered load, measured end to end from a separate process.

    .venv/bin/python bench/load.py            # writes bench/results/load.json (make bench)

The stack is started with the deploy/ scripts (tests/stack.py): gunicorn, ONE worker node
with 2 Celery pool processes, beat, Redis and PostgreSQL (the machine's shared servers; a
fresh database and key prefix). Throttling is raised through the environment
(UPLOAD_THROTTLE_RATE=100000/s) and the report says so. Per second, not per minute: DRF's
throttle keeps the user's request times for one window and rereads them on every request, and
a minute of one user at 75 jobs/s is 4,500 of them; a real user's 60/min window holds at most 60.

The client is a separate process: a bounded pool of threads that submits on a fixed
schedule (open loop), each submission waiting for its job with ``?wait=`` (the server holds
the request until the job finishes), then fetches every step picture of the result. A job
counts as done only when it succeeded, ran once (``attempts`` 1), its result holds its lines
and every picture was fetched. Latency runs from when a job was due to when its result
arrived (the picture fetches come after): a job that waited for a free client thread counts
that wait too, and the wait is reported on its own. Sustained throughput counts the results
that arrived in the steady part of each offered load (from WARM_UP_S after its start to the
end of its submissions), not the ramp-up or the drain. The highest offered load runs
PEAK_RUNS times and the median run is reported with every run's throughput: on a shared
host, saturation moves by a tenth from run to run. The burst is due all at once, and
afterwards the database must hold exactly one job per submission.

Each offered load also records the CPU each part of the stack used per finished job.

In the same run, the floor: a no-op task (diagnostics.ping) sent through the same broker
to the same workers, acknowledged through the cache.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import numpy as np
import urllib3

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import host  # noqa: E402
from tests.images import line_png, page_image, png  # noqa: E402
from tests.stack import Stack, start_process, wait_until  # noqa: E402

OFFERED = [10, 25, 50, 100]  # jobs per second
SECONDS_PER_LOAD = 15
WARM_UP_S = 3.0  # the first seconds of each offered load fill the pipeline; they are not counted
PEAK_RUNS = 3  # the highest offered load is run this many times; the median run is reported
BURST = 1000
CLIENT_THREADS = 64
LINES = ["12+3*4", "7*8=56", "2*(3+4)", "45-17", "6*7", "9-3="]


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


class Client:
    """The load's client: urllib3 on one connection pool, multipart bodies encoded once.

    It runs on the same two cores as the service, so it is kept lean: with requests it
    took about 3 ms of CPU per job, a tenth of the machine at saturation.
    """

    def __init__(self, stack: Stack, token: str):
        address = urlsplit(stack.url)
        self.pool = urllib3.HTTPConnectionPool(address.hostname, address.port, maxsize=CLIENT_THREADS, block=True, retries=False,
                                               timeout=urllib3.Timeout(total=30))
        self.headers = {"Authorization": f"Token {token}"}
        self.images = [line_png(text, seed) for text in LINES for seed in (1, 2)]
        self._bodies: dict[tuple[bytes, str], tuple[bytes, str]] = {}

    def _body(self, image: bytes, kind: str) -> tuple[bytes, str]:
        key = (image, kind)
        if key not in self._bodies:
            self._bodies[key] = urllib3.encode_multipart_formdata({"image": ("l.png", image, "image/png"), "kind": kind})
        return self._bodies[key]

    def _get(self, url: str, token: bool = True, **params) -> urllib3.BaseHTTPResponse:
        # Every URL is the stack's own: the API's, and the step links of filesystem storage, which
        # this stack uses (an S3 presigned link would need a client of its own).
        address = urlsplit(url)
        query = "&".join(filter(None, [address.query, urlencode(params)]))  # a signed picture link has its own
        return self.pool.request("GET", address.path + (f"?{query}" if query else ""), headers=self.headers if token else {})

    def one_job(self, image: bytes, kind: str = "expression", scheduled: float | None = None) -> dict:
        """``scheduled``: when the job was due (open loop); its latency counts from then, so
        time spent waiting for a free client thread is not hidden (coordinated omission).
        A connection that fails counts the job as not done, with why, and the run goes on."""
        try:
            return self._one_job(image, kind, scheduled)
        except urllib3.exceptions.HTTPError as error:
            return {"ok": False, "why": f"connection: {type(error).__name__}"}

    def _one_job(self, image: bytes, kind: str, scheduled: float | None) -> dict:
        body, content_type = self._body(image, kind)
        sent = time.monotonic()
        started = sent if scheduled is None else scheduled
        # The submission itself waits for the result (?wait=): 201 with the finished job, or
        # 202 when the wait ran out or every waiting slot was taken; then wait on the job.
        response = self.pool.request("POST", "/api/v1/jobs/?wait=20", body=body, headers={**self.headers, "Content-Type": content_type})
        if response.status not in (201, 202):
            return {"ok": False, "why": f"HTTP {response.status}"}
        body, url = json.loads(response.data), response.headers["Location"]
        while body["status"] not in ("succeeded", "failed"):
            time.sleep(0.25)  # answered early, as the web page does when the server had no waiting slot
            body = json.loads(self._get(url, wait="20").data)
        result_at = time.monotonic()
        if body["status"] != "succeeded":
            return {"ok": False, "why": body["error"]["code"]}
        pictures = [self._get(url, token=False) for url in body["steps"].values() if url]  # signed links: no token
        stored = bool(body["result"]["lines"]) and len(pictures) == len(body["steps"])
        ok = stored and all(p.status == 200 and p.data[:4] == b"\x89PNG" for p in pictures)
        queued, began, ended = (datetime.fromisoformat(body[k].replace("Z", "+00:00")) for k in ("queued_at", "started_at", "finished_at"))
        return {
            "ok": ok, "why": None if ok else "result or pictures", "id": body["id"], "attempts": body["attempts"],
            "latency_s": result_at - started, "result_at": result_at, "client_wait_s": sent - started,
            "queue_s": (began - queued).total_seconds(), "processing_s": body["processing_ms"] / 1000,
        }

    def offered_load(self, rate: float, seconds: float) -> dict:
        count = int(rate * seconds)
        results = []
        begin = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(CLIENT_THREADS) as pool:
            futures = []
            for index in range(count):
                due = begin + index / rate
                time.sleep(max(0.0, due - time.monotonic()))
                futures.append(pool.submit(self.one_job, self.images[index % len(self.images)], scheduled=due))
            results = [f.result() for f in futures]
        elapsed = time.monotonic() - begin
        steady = [r for r in results if r["ok"] and begin + WARM_UP_S <= r["result_at"] <= begin + seconds]
        row = _summary(results, elapsed, offered=rate)
        row["throughput_per_s"] = round(len(steady) / (seconds - WARM_UP_S), 2)  # sustained: the steady window only
        return row


def _summary(results: list[dict], elapsed: float, offered: float | None = None) -> dict:
    done = [r for r in results if r["ok"]]

    def ms(key: str, q: float) -> float:
        return round(_percentile([r[key] * 1000 for r in done], q), 1)

    return {
        "offered_per_s": offered, "submitted": len(results), "done": len(done),
        "failed": sorted({r["why"] for r in results if not r["ok"]}),
        # A job answered twice, or run by more than one attempt (a redelivery), is a duplicate.
        "duplicates": len(done) - len({r["id"] for r in done}) + sum(r["attempts"] > 1 for r in done),
        "seconds": round(elapsed, 2), "throughput_per_s": round(len(done) / elapsed, 2), "overall_per_s": round(len(done) / elapsed, 2),
        "p50_ms": ms("latency_s", 50), "p95_ms": ms("latency_s", 95), "p99_ms": ms("latency_s", 99),
        "client_wait_p50_ms": ms("client_wait_s", 50), "client_wait_p95_ms": ms("client_wait_s", 95),
        "queue_p50_ms": ms("queue_s", 50), "queue_p95_ms": ms("queue_s", 95),
        "processing_p50_ms": ms("processing_s", 50), "processing_p95_ms": ms("processing_s", 95),
    }


def floor(stack: Stack, n: int = 200) -> dict:
    """No-op round trips through the same broker and workers, acknowledged via the cache."""
    code = f"""
import time, uuid, json, django
django.setup()
from django.core.cache import cache
from workers.celery_app import app
times = []
for _ in range({n}):
    token = uuid.uuid4().hex
    start = time.monotonic()
    app.send_task("diagnostics.ping", args=[token], queue="inference")
    while not cache.get(f"diagnostics.ping:{{token}}"):
        time.sleep(0.001)
    times.append((time.monotonic() - start) * 1000)
print(json.dumps(times))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=stack.env, capture_output=True, text=True, check=True)
    times = json.loads(out.stdout.strip().splitlines()[-1])
    return {"n": n, "p50_ms": round(_percentile(times, 50), 2), "p95_ms": round(_percentile(times, 95), 2)}


def worksheet_pages(client: Client, n: int = 6) -> dict:
    page = png(page_image(["7*8=56", "12-5=7", "3*(4+2)=18", "9+8=17", "6*7=42"] * 4, seed=1, dpi=300))  # A4 at 300 dpi, as the target says
    results = [client.one_job(page, kind="worksheet") for _ in range(n)]
    processing = [r["processing_s"] * 1000 for r in results if r["ok"]]
    return {"pages": n, "lines_per_page": 20, "dpi": 300, "done": len(processing),
            "processing_p50_ms": round(_percentile(processing, 50), 1), "processing_max_ms": round(max(processing), 1)}


def main() -> int:
    folder = Path(tempfile.mkdtemp(prefix="hw-load-"))
    # Each web process can hold a wait for every client thread (the client's connections are not
    # shared evenly between the two): past JOB_WAIT_MAX_WAITERS a request is answered 202 at once and
    # its client polls, which with 2x28 slots made a third more requests at saturation.
    stack = Stack.start(folder, UPLOAD_THROTTLE_RATE="100000/s", WORKER_CONCURRENCY="2", WEB_CONCURRENCY="2",
                        WEB_THREADS=str(CLIENT_THREADS + 8), JOB_WAIT_MAX_WAITERS=str(CLIENT_THREADS + 2), MAX_IMAGE_BYTES="15000000")
    try:
        token = subprocess.run([sys.executable, "webapp/manage.py", "issue_token", "load", "--create"], cwd=REPO, env=stack.env,
                               capture_output=True, text=True, check=True).stdout.strip()
        client = Client(stack, token)
        for _ in range(2):  # warm both pool processes (model load) before measuring
            client.offered_load(4, 2)
        report = {
            "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **host.describe(), "cores": os.cpu_count(), "client_threads": CLIENT_THREADS,
            "done_means": "it succeeded, ran once (attempts 1), its result holds its lines and the client fetched it and every step picture; "
                          f"throughput counts the results that arrived from {WARM_UP_S:g} s after each load's start to the end of its submissions",
            "setup": f"gunicorn 2×{CLIENT_THREADS + 8} threads, {CLIENT_THREADS + 2} waits each (clients wait with ?wait=), {CLIENT_THREADS} client threads, 1 Celery worker node with 2 pool processes (TF 1 thread each), beat, Redis, PostgreSQL, "
                     "client on the same machine; UPLOAD_THROTTLE_RATE raised to 100000/s for the benchmark",
            "floor": floor(stack),
            "loads": [],
        }
        for rate in OFFERED:
            runs = []
            for _ in range(PEAK_RUNS if rate == max(OFFERED) else 1):
                before = _cpu_seconds()
                row = client.offered_load(rate, SECONDS_PER_LOAD)
                after = _cpu_seconds()
                # Where the machine's CPU went, per finished job: which part to make cheaper next.
                row["cpu_ms_per_job"] = _cpu_ms_per_job(before, after, row["done"])
                runs.append(row)
            # At saturation the figure moves with the host's other tenants by a tenth or more from
            # run to run: the run with the median throughput is reported, and every run's figure.
            row = sorted(runs, key=lambda r: r["throughput_per_s"])[len(runs) // 2]
            if len(runs) > 1:
                row["throughput_runs_per_s"] = [r["throughput_per_s"] for r in runs]
            report["loads"].append(row)
        jobs_before = _jobs_in_database(stack)
        begin = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(CLIENT_THREADS) as pool:
            burst = list(pool.map(lambda i: client.one_job(client.images[i % len(client.images)], scheduled=begin), range(BURST)))
        report["burst"] = _summary(burst, time.monotonic() - begin)
        report["burst"]["jobs_stored"] = _jobs_in_database(stack) - jobs_before  # exactly one row per submission
        report["worksheet"] = worksheet_pages(client)
    finally:
        stack.stop()
    out = REPO / "bench" / "results" / "load.json"
    out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


def _jobs_in_database(stack: Stack) -> int:
    """The benchmark user's jobs, counted in PostgreSQL: no submission lost, none stored twice."""
    code = "import django; django.setup(); from webapp.recognition.models import Job; print(Job.objects.filter(owner__username='load').count())"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=stack.env, capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


_PARTS = (("gunicorn", "web"), ("workers.tasks worker", "worker"), ("workers.celery_app beat", "beat"),
          ("postgres:", "postgresql"), ("redis-server", "redis"))


def _cpu_seconds() -> dict[str, tuple[str, float]]:
    """CPU seconds (user + system) used so far by each process of the stack, and by this client: pid -> (part, seconds)."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {"self": ("client", sum(os.times()[:2]))}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        part = next((name for marker, name in _PARTS if marker in command), None)
        if part is not None:
            used[pid] = (part, (int(fields[11]) + int(fields[12])) / tick)
    return used


def _cpu_ms_per_job(before: dict, after: dict, jobs: int) -> dict[str, float]:
    """Per part, per job. A process that started meanwhile counts in full; one that ended
    meanwhile (a closed database connection) is missed, so a figure can only be low."""
    spent: dict[str, float] = {}
    for pid, (part, seconds) in after.items():
        spent[part] = spent.get(part, 0.0) + seconds - before.get(pid, (part, 0.0))[1]
    return {part: round(1000 * seconds / max(1, jobs), 2) for part, seconds in spent.items()}


if __name__ == "__main__":
    sys.exit(main())
