"""The real service for the tests: gunicorn, a Celery worker and beat, on PostgreSQL and Redis.

One :class:`Stack` is started per test session (see ``conftest.stack``). It gets
its own PostgreSQL database and its own Redis key prefixes (broker and cache), so
nothing left over from another run can reach it; it runs the same start scripts
as `make run` and the Docker images, and is torn down at the end.
"""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
BROKER_DB, CACHE_DB = 14, 15


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 15) -> None:
        if self.popen.poll() is not None:
            return
        # The main process only, as Docker does: it stops its own children. A Celery pool child
        # signalled directly can die holding the pool's queue lock and hang its parent.
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        try:  # whatever is left of its process group
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait()


def _die_with_the_tests() -> None:
    """In the child: get SIGTERM if the test process dies, even by SIGKILL (Linux prctl PR_SET_PDEATHSIG)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def start_process(name: str, command: list[str], env: dict, folder: Path) -> Process:
    log = folder / f"{name}.log"
    handle = open(log, "ab")
    popen = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=_die_with_the_tests,
    )
    return Process(name, popen, log)


@dataclass
class Stack:
    folder: Path
    env: dict
    url: str = ""
    database: str = ""
    processes: dict[str, Process] = field(default_factory=dict)

    # --- lifecycle ---------------------------------------------------------------------
    admin_url: str = PG_ADMIN_URL

    @classmethod
    def start(cls, folder: Path, admin_url: str = PG_ADMIN_URL, redis_url: str = REDIS_URL, **overrides: str) -> "Stack":
        database = f"hwtest_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        _admin_sql(f'CREATE DATABASE "{database}"', admin_url)
        port = free_port()
        env = {
            **os.environ,
            "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ.get('PATH', '')}",
            "DJANGO_SETTINGS_MODULE": "webapp.config.settings.test",
            "DATABASE_URL": admin_url.rsplit("/", 1)[0] + f"/{database}",
            "CELERY_BROKER_URL": f"{redis_url}/{BROKER_DB}",
            # Its own queues: a worker left over from another run can never take this run's jobs.
            "CELERY_BROKER_KEY_PREFIX": f"{database}:",
            "CACHE_URL": f"{redis_url}/{CACHE_DB}",
            "CACHE_KEY_PREFIX": database,
            "VAR_DIR": str(folder / "var"),
            "MEDIA_ROOT": str(folder / "media"),
            "STATIC_ROOT": str(folder / "static"),
            # Short deadlines, so the sweep and the leases can be seen working within a test.
            "JOB_SWEEP_INTERVAL": "1",
            "JOB_REQUEUE_AFTER": "4",
            "JOB_SOFT_TIME_LIMIT": "20",
            "JOB_TIME_LIMIT": "30",
            "JOB_LEASE_SECONDS": "40",
            "JOB_MAX_ATTEMPTS": "3",
            "JOB_MAX_RETRIES": "1",
            "UPLOAD_THROTTLE_RATE": "25/min",
            # Small limits, so that a test can go over each one cheaply.
            "MAX_IMAGE_BYTES": "3000000",
            "MAX_PDF_BYTES": "6000000",
            "MAX_REQUEST_BYTES": "12000000",
            "MAX_PAGES_PER_BATCH": "5",
            "AUTH_THROTTLE_RATE": "200/min",
            "TF_NUM_THREADS": "1",
            "MODEL_REGISTRY": "database",  # as deployed: the pointer in PostgreSQL, the files in storage
            "WEB_CONCURRENCY": "2",
            "BIND": f"127.0.0.1:{port}",
            "LOG_LEVEL": "INFO",
            **overrides,
        }
        stack = cls(folder, env, f"http://127.0.0.1:{port}", database, admin_url=admin_url)
        try:
            subprocess.run(["deploy/migrate.sh"], cwd=REPO, env=env, check=True, capture_output=True, timeout=300)
            stack.processes["web"] = start_process("web", ["deploy/start-web.sh"], env, folder)
            stack.processes["worker"] = start_process("worker", ["deploy/start-worker.sh"], env, folder)
            stack.processes["beat"] = start_process("beat", ["deploy/start-beat.sh"], env, folder)
            stack.wait_ready()
        except BaseException:
            print(stack.logs(), file=sys.stderr)
            stack.stop()
            raise
        return stack

    def wait_ready(self, timeout: float = 120) -> None:
        def ready():
            for process in self.processes.values():
                if process.popen.poll() is not None:
                    raise RuntimeError(f"{process.name} exited with {process.popen.returncode}\n{process.tail()}")
            if " ready." not in self.processes["worker"].log.read_text(errors="replace"):
                return False  # the worker has not joined yet
            try:
                return requests.get(f"{self.url}/readyz", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(ready, timeout, what="the stack's /readyz")

    def logs(self) -> str:
        return "\n".join(process.tail() for process in self.processes.values())

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()
        try:
            _admin_sql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)', self.admin_url)
        except Exception as error:  # teardown must not hide a test failure
            print(f"could not drop {self.database}: {error}", file=sys.stderr)

    # --- helpers for tests ---------------------------------------------------------------
    def api(self, path: str) -> str:
        return f"{self.url}/api/v1/{path.lstrip('/')}"

    def client(self, username: str | None = None, password: str | None = None) -> "Client":
        """A requests session logged in with the API token of a new user."""
        from django.contrib.auth import get_user_model
        from rest_framework.authtoken.models import Token

        username = username or f"user-{uuid.uuid4().hex[:10]}"
        user = get_user_model().objects.create_user(username=username, password=password or "pw-" + uuid.uuid4().hex)
        token = Token.objects.create(user=user)
        session = Client(self)
        session.headers["Authorization"] = f"Token {token.key}"
        session.user, session.token = user, token.key
        return session


class Client(requests.Session):
    def __init__(self, stack: Stack):
        super().__init__()
        self.stack = stack

    def submit(self, png: bytes, name: str = "line.png", kind: str = "expression", **kwargs) -> requests.Response:
        return self.post(self.stack.api("jobs/"), files={"image": (name, png, "image/png")}, data={"kind": kind}, **kwargs)

    def wait(self, job_url: str, timeout: float = 90) -> dict:
        def finished():
            body = self.get(job_url, timeout=10).json()
            return body if body["status"] in ("succeeded", "failed") else None

        return wait_until(finished, timeout, interval=0.25, what=f"job {job_url}")


def api_error(response, status: int, code: str) -> dict:
    """The error of a response that must be an API error: its status, the standard shape, its code."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"], body
    return body["error"]


def _admin_sql(statement: str, admin_url: str = PG_ADMIN_URL) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as connection:
        connection.execute(statement)


def alternative_that_parses(line: dict) -> tuple[int, str, str]:
    """A (symbol index, shown alternative, new text) that still forms an expression."""
    from workers.pipeline import grammar
    from workers.pipeline.errors import RecognitionError

    text = [symbol["symbol"] for symbol in line["symbols"]]
    for index, symbol in enumerate(line["symbols"]):
        for choice, _ in symbol["top3"][1:]:
            candidate = "".join(text[:index] + [choice] + text[index + 1:])
            try:
                grammar.parse_line(candidate)
            except RecognitionError:
                continue
            return index, choice, candidate
    raise AssertionError(f"no shown alternative of {text} parses")
