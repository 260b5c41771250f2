"""Offline training writes a new, complete version folder, and an interrupted run resumes.

These runs use the tiny `--small` data set: they check the machinery, not the
model's quality (tests/test_model_quality.py checks the committed model).
"""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _train(tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [
        sys.executable, "-m", "training.train", "--small", "--threads", "1",
        "--models-dir", str(tmp_path / "models"), "--runs-dir", str(tmp_path / "runs"),
        "--real-data", str(tmp_path / "no-real-data"), *args,
    ]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _epochs_logged(run_dir: Path) -> list[int]:
    history = run_dir / "history.csv"
    if not history.exists():
        return []
    with open(history) as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def test_interrupted_run_resumes_and_writes_new_versions(tmp_path):
    # Start a 2-epoch run and kill it hard once the first epoch is checkpointed.
    first = _train(tmp_path, "--epochs", "2")
    deadline = time.time() + 300
    run_dir = None
    while time.time() < deadline:
        runs = list((tmp_path / "runs").glob("*")) if (tmp_path / "runs").exists() else []
        if runs and _epochs_logged(runs[0]) == [0]:
            run_dir = runs[0]
            break
        assert first.poll() is None, first.stdout.read()
        time.sleep(0.5)
    assert run_dir is not None, "the first epoch never finished"
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert not (tmp_path / "models" / "v0001").exists()

    # Resume: only the second epoch runs, then the version is written.
    resumed = _train(tmp_path, "--epochs", "2", "--resume", run_dir.name, "--promote", "--force-promote")  # a 2-epoch model is far below the floors
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, output
    assert _epochs_logged(run_dir) == [0, 1]
    version = tmp_path / "models" / "v0001"
    for name in ("model.keras", "labels.json", "config.json", "metrics.json", "report.md", "confusion.png"):
        assert (version / name).stat().st_size > 0, name
    config = json.loads((version / "config.json").read_text())
    assert config["hyperparameters"]["epochs"] == 2
    assert config["versions"]["tensorflow"] and config["dataset"]["mnist_sha256"]
    assert "--resume" in config["command"]
    assert (tmp_path / "models" / "ACTIVE").read_text().strip() == "v0001"
    assert (version / "model.keras").stat().st_size < 2 * 1024 * 1024

    # A second run never overwrites: it becomes v0002.
    before = (version / "model.keras").read_bytes()
    second = _train(tmp_path)
    output = second.communicate(timeout=600)[0]
    assert second.returncode == 0, output
    assert (tmp_path / "models" / "v0002" / "model.keras").exists()
    assert (version / "model.keras").read_bytes() == before


def test_resume_of_an_unknown_run_is_refused(tmp_path):
    process = _train(tmp_path, "--resume", "no-such-run")
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 2 and "no run 'no-such-run'" in output
