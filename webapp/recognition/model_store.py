"""Which model serves, for the web and the workers: the registry's files, or, in a deployment,
a database pointer with the model files in shared storage.

``MODEL_REGISTRY=files`` (the default; `make run`, one machine): ``models/ACTIVE``.
``MODEL_REGISTRY=database`` (several hosts): the newest :class:`ModelPointer` row names
the active version, and its files live in Django storage (S3) under ``models/<version>/``,
each checked by sha256. The first migrate seeds both from the repository's ``models/``.
Workers call :func:`fetch` to get a verified local copy, so hosts share no folder.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.db import connection, transaction

from models import registry
from webapp.recognition.models import ModelPointer, ModelVersion

STORAGE_PREFIX = "models"
FILES = ("model.keras", "labels.json", "config.json", "metrics.json")


class ModelStoreError(Exception):
    """A model operation that cannot be done, with a message for a person."""


def in_database() -> bool:
    return settings.MODEL_REGISTRY == "database"


def _sha256(handle) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


# --- reading ---------------------------------------------------------------------------------
def active_version() -> str:
    if not in_database():
        return registry.active_version()
    # Every worker reads this for every job: plain SQL, because building the ORM's query cost
    # four times what the query itself does.
    with connection.cursor() as cursor:
        cursor.execute(_ACTIVE_SQL)
        row = cursor.fetchone()
    if row is None:
        raise ModelStoreError("no active model: run the migrations (they seed it) or `python -m models promote VERSION`")
    return row[0]


_ACTIVE_SQL = "SELECT {version} FROM {table} ORDER BY id DESC LIMIT 1".format(
    version=connection.ops.quote_name(ModelPointer._meta.get_field("version").column),
    table=connection.ops.quote_name(ModelPointer._meta.db_table),
)


def wanted_version() -> str:
    """The version a worker reads with: the one MODEL_VERSION pins, or the ACTIVE one."""
    return os.environ.get("MODEL_VERSION") or active_version()


def exists(version: str) -> bool:
    if not in_database():
        return version in registry.list_versions()
    return ModelVersion.objects.filter(pk=version).exists()


def versions() -> list[dict]:
    """Each version with its metrics, oldest first."""
    if not in_database():
        return [{"version": v, "metrics": registry.describe(v)["metrics"], "size_bytes": registry.describe(v)["size_bytes"]}
                for v in registry.list_versions()]
    return [{"version": row.version, "metrics": row.metrics, "size_bytes": None} for row in ModelVersion.objects.all()]


def history() -> list[dict]:
    return [
        {"at": p.at.isoformat(timespec="seconds"), "action": p.action, "version": p.version_id, "previous": p.previous or None, "forced": p.forced}
        for p in ModelPointer.objects.all()
    ]


# --- writing -----------------------------------------------------------------------------------
def register_folder(folder: Path) -> ModelVersion:
    """Upload a version folder's files to storage and record their sha256 (idempotent)."""
    version = folder.name
    if not registry.VERSION_PATTERN.match(version) or not (folder / "model.keras").exists():
        raise ModelStoreError(f"{folder} is not a model version folder")
    hashes = {}
    for name in FILES:
        path = folder / name
        if path.exists():
            with open(path, "rb") as handle:
                hashes[name] = _sha256(handle)
    existing = ModelVersion.objects.filter(pk=version).first()
    if existing is not None:
        if existing.files != hashes:
            raise ModelStoreError(f"{version} is already registered with different files; versions are never overwritten")
        return existing
    for name in hashes:
        target = f"{STORAGE_PREFIX}/{version}/{name}"
        if default_storage.exists(target):
            default_storage.delete(target)
        with open(folder / name, "rb") as handle:
            default_storage.save(target, File(handle))
    metrics = registry.describe(version, folder.parent)["metrics"] if (folder / "metrics.json").exists() else None
    return ModelVersion.objects.create(version=version, files=hashes, metrics=metrics)


def seed_from_repository(root: Path | None = None) -> bool:
    """At the first migrate: register the repository's versions and point at its ACTIVE one."""
    if ModelPointer.objects.exists():
        return False
    root = root or registry.models_dir()
    with transaction.atomic():
        for version in registry.list_versions(root):
            register_folder(root / version)
        ModelPointer.objects.create(action=ModelPointer.Action.SEED, version_id=registry.active_version(root))
    return True


def verify(version: str) -> list[str]:
    """Problems with a version's stored files (missing, or a sha256 that does not match)."""
    row = ModelVersion.objects.filter(pk=version).first()
    if row is None:
        return [f"no such model version: {version}"]
    problems = []
    for name, expected in row.files.items():
        path = f"{STORAGE_PREFIX}/{version}/{name}"
        try:
            with default_storage.open(path, "rb") as handle:
                actual = _sha256(handle)
        except (FileNotFoundError, OSError) as error:
            problems.append(f"{path} is missing ({type(error).__name__})")
            continue
        if actual != expected:
            problems.append(f"{path} is corrupt: sha256 {actual[:12]}… instead of {expected[:12]}…")
    return problems


def _move_pointer(action: str, version: str, previous: str | None, forced: bool = False) -> None:
    ModelPointer.objects.create(action=action, version_id=version, previous=previous or "", forced=forced)


def promote(version: str, force: bool = False) -> str | None:
    """Point every worker at ``version``; refuses broken files, and versions below the floors unless forced.

    Promoting the version that already serves changes nothing and adds no pointer row (so the next rollback
    still goes back a version), as with the files registry.
    """
    current = ModelPointer.objects.order_by("-id").values_list("version_id", flat=True).first()
    if current == version:
        return version
    problems = verify(version)
    if problems:
        raise ModelStoreError(f"cannot promote {version}: " + "; ".join(problems))
    row = ModelVersion.objects.get(pk=version)
    try:
        registry.check_promotable(version, row.metrics, force)
    except registry.RegistryError as error:
        raise ModelStoreError(str(error)) from None
    with transaction.atomic():
        previous = ModelPointer.objects.select_for_update().order_by("-id").first()
        if previous is not None and previous.version_id == version:  # promoted meanwhile
            return version
        _move_pointer(ModelPointer.Action.PROMOTE, version, previous.version_id if previous else None, forced=force)
    return previous.version_id if previous else None


def rollback() -> str:
    """Back to the version promoted before the current one (promotions unwind as a stack)."""
    with transaction.atomic():
        pointers = ModelPointer.objects.select_for_update().order_by("id")
        stack = registry.replay((pointer.action, pointer.version_id) for pointer in pointers)
        if len(stack) < 2:
            raise ModelStoreError(f"nothing to roll back to: {stack[-1] if stack else 'no version'} is the earliest")
        target = stack[-2]
        # The same check as promote, under the lock: workers would refuse missing or corrupt
        # files and keep serving the current version while the pointer said otherwise.
        problems = verify(target)
        if problems:
            raise ModelStoreError(f"cannot roll back to {target}: " + "; ".join(problems))
        _move_pointer(ModelPointer.Action.ROLLBACK, target, stack[-1])
    return target


# --- workers -----------------------------------------------------------------------------------
def fetch(version: str, cache_root: Path) -> Path:
    """A local registry root holding ``version``, downloaded from storage and checked by sha256."""
    target = cache_root / version
    if (target / ".verified").exists():
        return cache_root
    cache_root.mkdir(parents=True, exist_ok=True)
    # Pool processes of one worker share the cache: one downloads while the others wait for it.
    with open(cache_root / f".{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / ".verified").exists():
            return cache_root
        return _download(version, cache_root, target)


def _download(version: str, cache_root: Path, target: Path) -> Path:
    row = ModelVersion.objects.filter(pk=version).first()
    if row is None:
        raise ModelStoreError(f"no such model version: {version}")
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=cache_root))
    try:
        for name, expected in row.files.items():
            path = f"{STORAGE_PREFIX}/{version}/{name}"
            try:
                with default_storage.open(path, "rb") as source, open(staging / name, "wb") as out:
                    shutil.copyfileobj(source, out)
            except (FileNotFoundError, OSError) as error:
                raise ModelStoreError(f"model file {path} is missing ({type(error).__name__})") from None
            with open(staging / name, "rb") as handle:
                actual = _sha256(handle)
            if actual != expected:
                raise ModelStoreError(f"model file {path} is corrupt: sha256 {actual[:12]}… instead of {expected[:12]}…")
        (staging / ".verified").write_text(version)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cache_root
