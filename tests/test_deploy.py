"""What can be checked of the containers and production settings without a Docker engine.

- docker-compose 1.29 (Debian's) validates docker-compose.yml;
- hadolint lints both Dockerfiles, shellcheck lints deploy/;
- every COPY source exists and is not excluded by .dockerignore;
- the web image's requirements hold no TensorFlow;
- production settings pass `check --deploy`, refuse to start without a secret (or with a placeholder or short one),
  and answer /healthz to a private-IP Host over plain HTTP (and nothing else).
"""
from __future__ import annotations

import fnmatch
import os
import re
import subprocess
from pathlib import Path

import pytest
import requests

from tests.stack import REPO, free_port, start_process, wait_until

VENV_BIN = REPO / ".venv" / "bin"
DOCKERFILES = ["Dockerfile.web", "Dockerfile.worker"]
SCRIPTS = sorted(str(p.relative_to(REPO)) for p in (REPO / "deploy").rglob("*.sh"))
PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "webapp.config.settings.production",
    "DJANGO_SECRET_KEY": "k3y-for-the-deploy-check-only-9f8e7d6c5b4a39281716151413121110",
    "DJANGO_ALLOWED_HOSTS": "maths.example.org",
}


TEST_ONLY_ENV = ("DJANGO_ALLOW_ASYNC_UNSAFE",)  # set in the test process for Playwright; never in deployment


def _run(command: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in TEST_ONLY_ENV}
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=180, env={**clean, **(env or {})})


def test_the_compose_file_is_valid_for_docker_compose_1_29():
    result = _run(["docker-compose", "-f", "docker-compose.yml", "config", "-q"], {"ENV_FILE": ".env.example"})
    assert result.returncode == 0, result.stderr
    services = _run(["docker-compose", "-f", "docker-compose.yml", "config", "--services"], {"ENV_FILE": ".env.example"}).stdout.split()
    assert set(services) >= {"redis", "postgres", "migrate", "web", "worker", "beat"}


def test_the_dockerfiles_pass_hadolint():
    result = _run([str(VENV_BIN / "hadolint"), *DOCKERFILES])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_deploy_scripts_pass_shellcheck_and_are_strict():
    result = _run([str(VENV_BIN / "shellcheck"), *SCRIPTS])
    assert result.returncode == 0, result.stdout
    for script in SCRIPTS:
        text = (REPO / script).read_text()
        assert "set -euo pipefail" in text and os.access(REPO / script, os.X_OK), script
    for start in ("deploy/start-web.sh", "deploy/start-worker.sh", "deploy/start-beat.sh", "deploy/migrate.sh"):
        commands = (REPO / start).read_text().replace("\\\n", " ").splitlines()  # one line per command
        last = [line for line in commands if line.strip() and not line.lstrip().startswith("#")]
        assert last[-1].lstrip().startswith("exec "), f"{start} must end in exec"


def _ignored(path: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + "/") or fnmatch.fnmatch(path, p.lstrip("*/")) for p in patterns)


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_every_copy_source_exists_and_the_images_run_the_deploy_scripts(dockerfile):
    text = (REPO / dockerfile).read_text().replace("\\\n", " ")
    ignore = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")]
    copies = [line.split()[1:] for line in text.splitlines() if line.startswith("COPY ")]
    assert copies
    for arguments in copies:
        if any(a.startswith("--from") for a in arguments):
            continue
        for source in arguments[:-1]:
            assert (REPO / source).exists(), f"{dockerfile}: COPY {source} does not exist"
            assert not _ignored(source.rstrip("/"), ignore), f"{dockerfile}: COPY {source} is excluded by .dockerignore"
    commands = re.findall(r'(?:CMD|command:)\s*\[?"?(deploy/[\w-]+\.sh)', text + (REPO / "docker-compose.yml").read_text())
    assert commands and all((REPO / c).exists() for c in commands)


def _requirements(name: str) -> set[str]:
    found = set()
    for line in (REPO / "requirements" / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            found |= _requirements(line[3:].strip())
        elif line:
            found.add(re.split(r"[=<>\[ ]", line)[0].lower())
    return found


def test_the_web_image_has_no_tensorflow_and_the_worker_image_has():
    web = _requirements("web.txt")
    assert not web & {"tensorflow", "tensorflow-cpu", "keras", "opencv-python-headless", "numpy"}
    assert {"tensorflow-cpu", "keras"} <= _requirements("worker.txt")
    assert "requirements/web.txt" in (REPO / "Dockerfile.web").read_text()
    instructions = [line for line in (REPO / "Dockerfile.web").read_text().lower().splitlines() if not line.startswith("#")]
    assert not any("tensorflow" in line for line in instructions)


def test_production_settings_pass_check_deploy():
    result = _run([str(VENV_BIN / "python"), "webapp/manage.py", "check", "--deploy", "--fail-level", "WARNING"], PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = {**PRODUCTION_ENV}
    env.pop("DJANGO_SECRET_KEY")
    result = subprocess.run(
        [str(VENV_BIN / "python"), "webapp/manage.py", "check"], cwd=REPO, capture_output=True, text=True, timeout=120,
        env={k: v for k, v in {**os.environ, **env}.items() if k != "DJANGO_SECRET_KEY" and k not in TEST_ONLY_ENV},
    )
    assert result.returncode != 0 and "DJANGO_SECRET_KEY" in result.stderr


@pytest.mark.parametrize("variable, key", [
    ("DJANGO_SECRET_KEY", "replace-with-50-random-characters"), ("DJANGO_SECRET_KEY", "short-but-not-a-placeholder"),
    ("DJANGO_SECRET_KEY", "a" * 60), ("DJANGO_SECRET_KEY_FALLBACKS", "an-old-short-key"),
])
def test_production_refuses_a_placeholder_or_guessable_secret_key(variable, key):
    """The key signs sessions and the step picture links: the .env.example placeholder must not boot."""
    result = _run([str(VENV_BIN / "python"), "webapp/manage.py", "check"], {**PRODUCTION_ENV, variable: key})
    assert result.returncode != 0 and "must be 50+ random characters" in result.stderr


def test_production_refuses_the_test_only_delay():
    result = _run([str(VENV_BIN / "python"), "webapp/manage.py", "check"], {**PRODUCTION_ENV, "RECOGNITION_TEST_DELAY_S": "0.5"})
    assert result.returncode != 0 and "RECOGNITION_TEST_DELAY_S is for fault tests only" in result.stderr


def test_healthz_answers_a_private_ip_over_http_under_production_settings(tmp_path):
    port = free_port()
    env = {**os.environ, **PRODUCTION_ENV, "VAR_DIR": str(tmp_path), "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1",
           "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    for key in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL"):
        env.pop(key, None)
    web = start_process("web-production", ["deploy/start-web.sh"], env, tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _get(f"{url}/healthz", "10.0.3.7") is not None, 60, what="gunicorn under production settings")
        for host in ("10.0.3.7", "localhost", "127.0.0.1:8000"):
            response = _get(f"{url}/healthz", host)
            assert response.status_code == 200 and response.json() == {"status": "ok"}, host
        # So do readiness and metrics, for probes and scrapers on the private network.
        assert _get(f"{url}/readyz", "10.0.3.7").status_code in (200, 503)
        assert _get(f"{url}/metrics", "10.0.3.7").status_code == 200
        # Everything else keeps both protections.
        assert _get(f"{url}/api/v1/models/", "10.0.3.7").status_code == 400  # not an allowed host
        redirect = _get(f"{url}/api/v1/models/", "maths.example.org")
        assert redirect.status_code == 301 and redirect.headers["Location"].startswith("https://maths.example.org/")
    finally:
        web.stop()


def _get(url: str, host: str):
    try:
        return requests.get(url, headers={"Host": host}, allow_redirects=False, timeout=3)
    except requests.ConnectionError:
        return None
