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

import fcntl
import json
import logging
import math
import os
import re
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

VERSION_PATTERN = re.compile(r"^v\d{4,}$")
PROMOTION_FLOORS = {"operator_each": 0.97, "digits_mean": 0.95, "all": 0.96}
"""Real-handwriting floors (report half of ../shared/data/crohme-validation) a version must meet to be promoted."""
OPERATOR_CLASSES = "+-*()="
REQUIRED_FILES = ("model.keras", "labels.json", "config.json")
LOCK_FILE = ".lock"
POINTER_MODE = 0o644
"""ACTIVE is read by workers that may run as another user."""

log = logging.getLogger(__name__)


class RegistryError(Exception):
    """A registry operation that cannot be done, with a message for a person."""


def models_dir() -> Path:
    # An empty MODELS_DIR is unset, not the current folder.
    return Path(os.environ.get("MODELS_DIR") or Path(__file__).resolve().parent)


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
    """After every version there is or ever was: a folder, ACTIVE or any name in HISTORY. A
    deleted version's name is never given again, so HISTORY and every job's recorded version
    keep meaning one model."""
    root = root or models_dir()
    taken = [int(p.name[1:]) for p in root.iterdir() if p.is_dir() and VERSION_PATTERN.match(p.name)] if root.is_dir() else []
    named = [_current(root)] if root.is_dir() else []
    try:
        for entry in history(root):
            named += [entry.get("version"), entry.get("previous")]
    except RegistryError:
        pass  # a damaged HISTORY is reported where it is read for a decision; the folders still count
    taken += [int(name[1:]) for name in named if isinstance(name, str) and VERSION_PATTERN.match(name)]
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


def _fsync_directory(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step: readers see the old file or the new one, whole.

    The file is world-readable (mkstemp makes it 0600) and on disk, with its directory entry,
    before this returns; on any error the temporary file is removed and ``path`` is unchanged.
    """
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
            out.flush()
            os.fchmod(out.fileno(), POINTER_MODE)
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(path.parent)


def _parse_history_line(line: str) -> dict | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict) or entry.get("action") not in ("promote", "rollback") or not isinstance(entry.get("version"), str):
        return None
    return entry


def _read_history(path: Path) -> list[dict]:
    """HISTORY's entries, oldest first.

    HISTORY is replaced whole (see :func:`_record`), so it is never half-written now; a last
    line that does not parse is an append cut short by older code, which never took effect:
    it is ignored with a warning, and dropped by the next write. An unparsable line anywhere
    else is damage a person must look at.
    """
    if not path.exists():
        return []
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    entries = []
    for number, line in enumerate(lines, 1):
        entry = _parse_history_line(line)
        if entry is not None:
            entries.append(entry)
        elif number == len(lines):
            log.warning("ignoring the unreadable last line of %s (an interrupted write?): %r", path, line[:200])
        else:
            raise RegistryError(f"{path} entry {number} is not a promotion or rollback record: {line[:200]!r}; "
                                "repair or remove that line")
    return entries


@contextmanager
def _exclusive(root: Path):
    """One promotion or rollback at a time, across processes: each reads HISTORY and ACTIVE,
    adds a line and rewrites the files whole, and two at once would lose one's line."""
    # Opened read-only: flock needs no write access, so a lock file another user created
    # (like ACTIVE, replaced by rename, it needs only the folder's) never stands in the way.
    handle = os.open(root / LOCK_FILE, os.O_RDONLY | os.O_CREAT, POINTER_MODE)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # releases the lock


def history(root: Path | None = None) -> list[dict]:
    root = root or models_dir()
    return _read_history(root / "HISTORY")


def _record(root: Path, action: str, version: str, previous: str | None) -> None:
    """Add one entry to HISTORY, replacing the file whole as ACTIVE is: a write cut short leaves
    the old HISTORY, never half a line (it holds one short line per promotion)."""
    entry = {
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "action": action,
        "version": version,
        "previous": previous,
    }
    path = root / "HISTORY"
    entries = _read_history(path) + [entry]
    write_atomically(path, "".join(json.dumps(e) + "\n" for e in entries))


def _current(root: Path) -> str | None:
    pointer = root / "ACTIVE"
    return pointer.read_text().strip() if pointer.exists() else None


def _figure(value) -> float | None:
    """A usable accuracy: a number that is not NaN (None for anything else)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def floor_misses(report: dict | None) -> list[str]:
    """The promotion floors a real-handwriting report misses, as readable lines (empty when all are met).

    A figure that is missing or NaN misses its floor (nothing measured is not a pass), and so
    does a report over no symbols at all.
    """
    if not report:
        return ["no real-handwriting figures in metrics.json (run python -m training.validate_real)"]
    misses = []
    if "n" in report and report["n"] == 0:
        misses.append("n: the report half has no symbols")
    per_class = report.get("per_class") if isinstance(report.get("per_class"), dict) else {}
    figures = [(symbol, per_class.get(symbol), PROMOTION_FLOORS["operator_each"]) for symbol in OPERATOR_CLASSES]
    figures += [(key.replace("_", " "), report.get(key), PROMOTION_FLOORS[key]) for key in ("digits_mean", "all")]
    for name, raw, floor in figures:
        value = _figure(raw)
        if value is None:
            misses.append(f"{name}: {'missing' if raw is None else repr(raw)}, not measured (floor {floor})")
        elif value < floor:
            misses.append(f"{name}: {value:.4f} < {floor}")
    return misses


def promotion_blockers(metrics: dict | None) -> list[str]:
    return floor_misses(((metrics or {}).get("real_handwriting") or {}).get("report"))


def check_promotable(version: str, metrics: dict | None, force: bool) -> None:
    misses = promotion_blockers(metrics)
    if misses and not force:
        raise RegistryError(f"{version} is below the real-handwriting floors ({'; '.join(misses)}); pass --force to promote it anyway")


def promote(version: str, root: Path | None = None, force: bool = False) -> str | None:
    """Make ``version`` the serving model. Returns the version that was active before.

    A version below the real-handwriting floors is refused unless ``force``. Promoting the
    version that already serves changes nothing (HISTORY gets no second entry, so the next
    rollback still goes back a version). HISTORY is written before ACTIVE: a promotion cut
    short between the two is finished by running it again.
    """
    root = root or models_dir()
    version_dir(version, root)
    with _exclusive(root):
        return _promote(version, root, force)


def _promote(version: str, root: Path, force: bool) -> str | None:
    previous = _current(root)
    stack = promotion_stack(root)
    recorded = bool(stack) and stack[-1] == version
    if previous == version and recorded:
        return previous
    check_promotable(version, describe(version, root)["metrics"], force)
    if not recorded:
        _record(root, "promote", version, previous)
    write_atomically(root / "ACTIVE", version + "\n")
    return previous


def replay(steps) -> list[str]:
    """Versions promoted and not rolled back, oldest first, from ``(action, version)`` steps in order.

    Any action but "rollback" (a promotion, the database's seed) puts its version on top. A
    promotion of the version already on top is no new step, and a rollback whose target is
    already on top moved nothing (HISTORY written before re-promotion was a no-op has both).
    Shared by this registry's HISTORY and the database registry's pointer rows.
    """
    stack: list[str] = []
    for action, version in steps:
        if action == "rollback":
            if stack and stack[-1] != version:
                stack.pop()
        elif not stack or stack[-1] != version:
            stack.append(version)
    return stack


def promotion_stack(root: Path | None = None) -> list[str]:
    """Versions promoted and not rolled back, oldest first: replaying HISTORY."""
    return replay((entry["action"], entry["version"]) for entry in history(root))


def rollback(root: Path | None = None) -> str:
    """Point ACTIVE back at the version promoted before the current one. Returns it.

    Rollbacks undo promotions one by one, so two rollbacks after three
    promotions land on the first version, never back and forth. Refused when
    HISTORY does not end at the version ACTIVE names (ACTIVE edited by hand, or
    an operation cut short): which version is "before" is then unknown.
    """
    root = root or models_dir()
    with _exclusive(root):
        return _rollback(root)


def _rollback(root: Path) -> str:
    current = _current(root)
    stack = promotion_stack(root)
    if stack and stack[-1] != current:
        raise RegistryError(
            f"HISTORY does not match ACTIVE: its promotions end at {stack[-1]} but ACTIVE names {current or 'nothing'} "
            f"(edited by hand, or a promote or rollback cut short); promote the version that should serve "
            f"(`python -m models promote VERSION`) and roll back from there"
        )
    if len(stack) < 2:
        raise RegistryError(f"nothing to roll back to: {current} is the earliest promotion in HISTORY")
    target = stack[-2]
    if target not in list_versions(root):
        raise RegistryError(
            f"cannot roll back to {target}: its folder is gone from {root}; promote the version that should "
            f"serve instead (`python -m models promote VERSION`, with --force if it is below the floors)"
        )
    _record(root, "rollback", target, current)
    write_atomically(root / "ACTIVE", target + "\n")
    return target


def describe(version: str, root: Path | None = None) -> dict:
    """Labels, config and metrics of one version, as stored."""
    folder = version_dir(version, root)
    info = {"version": version, "path": str(folder)}
    for name in ("labels", "config", "metrics"):
        path = folder / f"{name}.json"
        try:
            info[name] = json.loads(path.read_text()) if path.exists() else None
        except ValueError:  # one damaged file must not stop `list` or the API's list of every version
            log.warning("%s is not valid JSON", path)
            info[name] = None
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
