"""Versioned models on disk, and the ACTIVE pointer that says which one serves.

Layout under ``MODELS_DIR`` (default: this folder)::

    v0001/  model.keras labels.json config.json metrics.json report.md confusion.png
    v0002/  ...
    ACTIVE          the serving version's name, one line
    HISTORY         one JSON line per promotion or rollback, newest last

A version folder is written once by ``python -m training.train`` and never
changed. ``promote`` points ACTIVE at a version; ``rollback`` points it back at
the version that was active before. TensorFlow is imported only by
:func:`load_model`, never at module level, so listing costs nothing.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path

VERSION_PATTERN = re.compile(r"^v\d{4,}$")
PROMOTION_FLOORS = {"operator_each": 0.97, "digits_mean": 0.95, "all": 0.96}
"""Real-handwriting floors (report half of ../shared/data/crohme-validation) a version must meet to be promoted."""
OPERATOR_CLASSES = "+-*()="
REQUIRED_FILES = ("model.keras", "labels.json", "config.json")


class RegistryError(Exception):
    """A registry operation that cannot be done, with a message for a person."""


def models_dir() -> Path:
    return Path(os.environ.get("MODELS_DIR", Path(__file__).resolve().parent))


def list_versions(root: Path | None = None) -> list[str]:
    """Complete version folders, oldest first."""
    root = root or models_dir()
    if not root.is_dir():
        return []
    found = [
        path.name
        for path in root.iterdir()
        if path.is_dir() and VERSION_PATTERN.match(path.name) and all((path / f).exists() for f in REQUIRED_FILES)
    ]
    return sorted(found, key=lambda name: int(name[1:]))


def next_version_name(root: Path | None = None) -> str:
    root = root or models_dir()
    taken = [int(p.name[1:]) for p in root.iterdir() if p.is_dir() and VERSION_PATTERN.match(p.name)] if root.is_dir() else []
    return f"v{(max(taken) + 1) if taken else 1:04d}"


def version_dir(version: str, root: Path | None = None) -> Path:
    root = root or models_dir()
    if version not in list_versions(root):
        raise RegistryError(f"no such model version: {version!r} (have: {', '.join(list_versions(root)) or 'none'})")
    return root / version


def active_version(root: Path | None = None) -> str:
    root = root or models_dir()
    pointer = root / "ACTIVE"
    if not pointer.exists():
        raise RegistryError(f"no ACTIVE model in {root}: promote one with `python -m models promote VERSION`")
    version = pointer.read_text().strip()
    version_dir(version, root)  # the pointer must name a complete version
    return version


def _write_atomically(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as out:
        out.write(text)
    os.replace(temporary, path)


def history(root: Path | None = None) -> list[dict]:
    root = root or models_dir()
    path = root / "HISTORY"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _record(root: Path, action: str, version: str, previous: str | None) -> None:
    entry = {
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "action": action,
        "version": version,
        "previous": previous,
    }
    with open(root / "HISTORY", "a") as out:
        out.write(json.dumps(entry) + "\n")


def _current(root: Path) -> str | None:
    pointer = root / "ACTIVE"
    return pointer.read_text().strip() if pointer.exists() else None


def floor_misses(report: dict | None) -> list[str]:
    """The promotion floors a real-handwriting report misses, as readable lines (empty when all are met)."""
    if not report:
        return ["no real-handwriting figures in metrics.json (run python -m training.validate_real)"]
    misses = []
    for symbol in OPERATOR_CLASSES:
        value = report["per_class"].get(symbol, 1.0)
        if value < PROMOTION_FLOORS["operator_each"]:
            misses.append(f"{symbol}: {value:.4f} < {PROMOTION_FLOORS['operator_each']}")
    for key in ("digits_mean", "all"):
        if report[key] < PROMOTION_FLOORS[key]:
            misses.append(f"{key.replace('_', ' ')}: {report[key]:.4f} < {PROMOTION_FLOORS[key]}")
    return misses


def promotion_blockers(metrics: dict | None) -> list[str]:
    return floor_misses(((metrics or {}).get("real_handwriting") or {}).get("report"))


def check_promotable(version: str, metrics: dict | None, force: bool) -> None:
    misses = promotion_blockers(metrics)
    if misses and not force:
        raise RegistryError(f"{version} is below the real-handwriting floors ({'; '.join(misses)}); pass --force to promote it anyway")


def promote(version: str, root: Path | None = None, force: bool = False) -> str:
    """Make ``version`` the serving model. Returns the version that was active before.

    A version below the real-handwriting floors is refused unless ``force``.
    """
    root = root or models_dir()
    version_dir(version, root)
    check_promotable(version, describe(version, root)["metrics"], force)
    previous = _current(root)
    _write_atomically(root / "ACTIVE", version + "\n")
    _record(root, "promote", version, previous)
    return previous


def promotion_stack(root: Path | None = None) -> list[str]:
    """Versions promoted and not rolled back, oldest first: replaying HISTORY."""
    stack: list[str] = []
    for entry in history(root):
        if entry["action"] == "promote":
            stack.append(entry["version"])
        elif entry["action"] == "rollback" and stack:
            stack.pop()
    return stack


def rollback(root: Path | None = None) -> str:
    """Point ACTIVE back at the version promoted before the current one. Returns it.

    Rollbacks undo promotions one by one, so two rollbacks after three
    promotions land on the first version, never back and forth.
    """
    root = root or models_dir()
    current = _current(root)
    stack = promotion_stack(root)
    if len(stack) < 2:
        raise RegistryError(f"nothing to roll back to: {current} is the earliest promotion in HISTORY")
    target = stack[-2]
    version_dir(target, root)
    _write_atomically(root / "ACTIVE", target + "\n")
    _record(root, "rollback", target, current)
    return target


def describe(version: str, root: Path | None = None) -> dict:
    """Labels, config and metrics of one version, as stored."""
    folder = version_dir(version, root)
    info = {"version": version, "path": str(folder)}
    for name in ("labels", "config", "metrics"):
        path = folder / f"{name}.json"
        info[name] = json.loads(path.read_text()) if path.exists() else None
    info["size_bytes"] = (folder / "model.keras").stat().st_size
    return info


def load_model(version: str | None = None, root: Path | None = None):
    """Load a version's Keras model (the ACTIVE one by default). Imports TensorFlow."""
    root = root or models_dir()
    version = version or active_version(root)
    folder = version_dir(version, root)
    import keras  # deliberately here: listing and promoting must not pay for TensorFlow

    return keras.models.load_model(folder / "model.keras", compile=False)


def load_labels(version: str, root: Path | None = None) -> list[str]:
    return json.loads((version_dir(version, root) / "labels.json").read_text())["classes"]


def load_config(version: str, root: Path | None = None) -> dict:
    return json.loads((version_dir(version, root) / "config.json").read_text())
