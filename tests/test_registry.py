"""The model registry: versions, the ACTIVE pointer, promote and rollback.

Each test works on a temporary copy of the registry; the repository's own
ACTIVE pointer is never touched.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from models import registry

REPO = Path(__file__).resolve().parent.parent


def _report(operator: float = 0.98, digits: float = 0.97, everything: float = 0.97) -> dict:
    return {"per_class": {symbol: operator for symbol in "+-*()="}, "digits_mean": digits, "all": everything}


def _fake_version(root: Path, name: str, report: dict | None = None) -> None:
    folder = root / name
    folder.mkdir()
    (folder / "model.keras").write_bytes(b"weights")
    (folder / "labels.json").write_text(json.dumps({"classes": ["0"]}))
    (folder / "config.json").write_text(json.dumps({"version": name}))
    (folder / "metrics.json").write_text(json.dumps({"real_handwriting": {"report": report or _report()}}))


@pytest.fixture
def root(tmp_path):
    for name in ("v0001", "v0002", "v0003"):
        _fake_version(tmp_path, name)
    (tmp_path / ".v0004.partial").mkdir()  # an unfinished run is not a version
    return tmp_path


def test_versions_are_listed_in_order_and_partials_ignored(root):
    assert registry.list_versions(root) == ["v0001", "v0002", "v0003"]
    assert registry.next_version_name(root) == "v0004"


def test_promote_and_rollback_walk_the_history(root):
    with pytest.raises(registry.RegistryError, match="no ACTIVE"):
        registry.active_version(root)
    registry.promote("v0001", root)
    registry.promote("v0002", root)
    registry.promote("v0003", root)
    assert registry.active_version(root) == "v0003"
    assert registry.rollback(root) == "v0002"
    assert registry.rollback(root) == "v0001"
    assert registry.active_version(root) == "v0001"
    with pytest.raises(registry.RegistryError, match="nothing to roll back"):
        registry.rollback(root)
    assert [e["action"] for e in registry.history(root)] == ["promote", "promote", "promote", "rollback", "rollback"]


def test_promoting_an_unknown_version_changes_nothing(root):
    registry.promote("v0002", root)
    with pytest.raises(registry.RegistryError, match="no such model version"):
        registry.promote("v0999", root)
    assert registry.active_version(root) == "v0002"


def test_a_version_below_the_real_handwriting_floors_needs_force(root):
    _fake_version(root, "v0004", _report(operator=0.95))
    registry.promote("v0003", root)
    with pytest.raises(registry.RegistryError, match=r"below the real-handwriting floors \(\+: 0.9500 < 0.97"):
        registry.promote("v0004", root)
    assert registry.active_version(root) == "v0003"
    registry.promote("v0004", root, force=True)
    assert registry.active_version(root) == "v0004"
    assert registry.floor_misses(_report(digits=0.9, everything=0.9)) == ["digits mean: 0.9000 < 0.95", "all: 0.9000 < 0.96"]


def test_the_committed_models_floor_figures_are_what_promotion_sees():
    # The serving v0010 and v0008, v0006, v0005 and v0002 before it miss operator floors, and
    # the README says so: promoting any of them needs --force.
    versions = ("v0002", "v0005", "v0006", "v0008", "v0010")
    blockers = {v: [miss.split(":")[0] for miss in registry.promotion_blockers(registry.describe(v)["metrics"])] for v in versions}
    assert blockers == {"v0002": ["+", "("], "v0005": ["("], "v0006": ["("], "v0008": ["("], "v0010": ["("]}


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MODELS_DIR": str(root)}
    return subprocess.run([sys.executable, "-m", "models", *args], cwd=REPO, env=env, capture_output=True, text=True)


def test_cli_works_on_models_dir_and_never_imports_tensorflow(root):
    assert _cli(root, "promote", "v0002").returncode == 0
    assert _cli(root, "promote", "v0003").returncode == 0
    listing = _cli(root, "list").stdout.splitlines()
    assert [line.split()[0] for line in listing] == ["v0001", "v0002", "*"]
    assert "v0003" in listing[2]
    rolled = _cli(root, "rollback")
    assert rolled.returncode == 0 and "v0002" in rolled.stdout
    assert json.loads(_cli(root, "show").stdout)["version"] == "v0002"
    bad = _cli(root, "promote", "nope")
    assert bad.returncode == 2 and "no such model version" in bad.stderr
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, models.registry, models.__main__; print('tensorflow' in sys.modules)"],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "MODELS_DIR": str(root)},
    )
    assert probe.stdout.strip() == "False"


def test_the_repository_ships_one_promoted_version():
    real_root = REPO / "models"
    active = registry.active_version(real_root)
    folder = real_root / active
    for name in ("model.keras", "labels.json", "config.json", "metrics.json", "report.md", "confusion.png"):
        assert (folder / name).exists(), name
    assert (folder / "model.keras").stat().st_size < 2 * 1024 * 1024
    config = json.loads((folder / "config.json").read_text())
    for key in ("command", "git_commit", "wall_time_s", "preprocess", "dataset", "versions"):
        assert config[key], key
    assert config["dataset"]["sha256"]["train"] and config["dataset"]["sizes"]["test"]["total"] > 0


def test_copied_registry_is_independent(root, tmp_path_factory):
    copy = tmp_path_factory.mktemp("copy") / "models"
    shutil.copytree(root, copy)
    registry.promote("v0001", copy)
    assert not (root / "ACTIVE").exists()
