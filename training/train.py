"""Train the symbol classifier offline and write a NEW model version folder.

    python -m training.train                 # full run (about 15 minutes on 2 cores)
    python -m training.train --resume RUN    # continue an interrupted run, with its own arguments
    python -m training.train --small         # a tiny run that only checks the machinery

Reads top to bottom: prepare the data, build the model, train (checkpointing
every epoch), evaluate on held-out data and on real handwriting, write the
version folder with its provenance and report. It never overwrites a version.

A run folder (``data/runs/RUN``) holds the run's arguments (``args.json``,
written before anything else), the per-epoch checkpoints, and ``fit-done.json``
once training has finished, so ``--resume`` continues with the same data, loss
and schedule, and after a crash past training goes straight to evaluation.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from models.registry import write_atomically
from training import dataset, validate_real
from workers.pipeline import calibration
from workers.pipeline.preprocess import DEFAULT_STROKE_METHOD, STROKE_METHODS, known_stroke_method, preprocess_config, stroke_channels
from workers.pipeline.symbols import DISPLAY, MODEL_CLASSES, NOT_ONE_SYMBOL, NOT_ONE_SYMBOL_INDEX, symbol_columns

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNS_DIR = REPO_ROOT / "data" / "runs"
ARGS_FILE = "args.json"
FIT_DONE_FILE = "fit-done.json"
VERSION_FILE = "version.txt"
"""The version a run claimed, written before its folder takes the name: a run resumed after it
wrote its version (killed before it could say so) finds it there instead of writing a second."""
RUN_DEFAULTS = {
    "small": False,
    "epochs": None,  # 14, or 1 with --small
    "batch_size": 128,
    "learning_rate": 2e-3,
    "label_smoothing": 0.0,
    "seed": 1234,
    "width": 32,
    "stroke_method": DEFAULT_STROKE_METHOD,
    "mnist": None,
    "mnist_copies": None,  # the data set's default: 1, or 0 with --small
    "mnist_share": None,  # None: every sample of a class weighs the same
    "models_dir": None,  # $MODELS_DIR or models/, resolved when the run starts
}
"""The arguments that define a run's data, model, loss and schedule, and the registry it
writes to: saved in the run folder, restored by --resume (resumed without --models-dir, a
run started with one would have written a second version elsewhere). The parser leaves them
None when not given."""
PATH_ARGUMENTS = ("mnist", "models_dir")
OVERRIDABLE_ON_RESUME = ("models_dir",)
"""Restored when omitted, but a resumed run may be sent elsewhere (its first registry may be
what made it fail)."""
PARTIAL_PATTERN = re.compile(r"^\.v(\d{4,})\.partial$")


def _stroke_method(value: str) -> str:
    try:
        return known_stroke_method(value)
    except ValueError as error:  # argparse says why, not only "invalid value"
        raise argparse.ArgumentTypeError(str(error)) from None


def _count(value: str) -> int:
    count = int(value)
    if count < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {count}")
    return count


def _share(value: str) -> float:
    share = float(value)
    if not 0.0 < share < 1.0:
        raise argparse.ArgumentTypeError(f"must lie between 0 and 1, not {share}")
    return share


def sample_weights(labels: np.ndarray, sources: np.ndarray, mnist_share: float | None) -> np.ndarray:
    """Each training sample's weight: classes balanced (the digit/operator imbalance), and with
    ``mnist_share`` each digit class's weight split between its real MNIST samples (that part)
    and its generated ones (the rest), whatever their numbers. Full MNIST outnumbers the
    generator's other writing styles (a flagged ``1``, a crossed ``7``) five to one."""
    from sklearn.utils.class_weight import compute_sample_weight

    weights = compute_sample_weight("balanced", labels)
    if mnist_share is None:
        return weights
    real = np.char.startswith(sources.astype(str), "mnist")
    for label in np.unique(labels[real]):
        in_class = labels == label
        mine, theirs = in_class & real, in_class & ~real
        if theirs.any():
            weights[mine] *= mnist_share * in_class.sum() / mine.sum()
            weights[theirs] *= (1 - mnist_share) * in_class.sum() / theirs.sum()
    return weights


def dataset_config(args: argparse.Namespace) -> dataset.DatasetConfig:
    """The data set a run's arguments ask for."""
    config = replace(dataset.DatasetConfig.small() if args.small else dataset.DatasetConfig(), stroke_method=args.stroke_method)
    if args.mnist_copies is not None:
        config = replace(config, mnist_augmented_copies=args.mnist_copies)
    return config


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.splitlines()[0])
    # Arguments in RUN_DEFAULTS default to None here, so that --resume can tell given from omitted.
    parser.add_argument("--epochs", type=int, help="default: 14, or 1 with --small")
    parser.add_argument("--batch-size", type=int, help="default: 128")
    parser.add_argument("--learning-rate", type=float, help="default: 2e-3")
    parser.add_argument("--label-smoothing", type=float,
                        help="spread this much of each target over the other classes: softer, less overconfident probabilities for the decoder (default: 0)")
    parser.add_argument("--seed", type=int, help="default: 1234")
    parser.add_argument("--width", type=int, help="filters of the first conv block (inference cost grows with its square; default: 32)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("TF_NUM_THREADS", "0")), help="TF threads (0: all cores)")
    parser.add_argument("--stroke-method", type=_stroke_method, metavar="|".join(STROKE_METHODS),
                        help="how crops' stroke widths are normalised (workers.pipeline.preprocess; default: "
                             f"{DEFAULT_STROKE_METHOD}); several joined by '+' give the model one input channel each")
    parser.add_argument("--mnist", type=Path, help="other MNIST digits than the default full set: a folder of IDX files, "
                                                     "a Keras mnist.npz, or an .npz of x/y (split by a fixed seed)")
    parser.add_argument("--mnist-copies", type=_count, metavar="N",
                        help="augmented copies of each real MNIST training digit (affine, elastic, scan-like; default: 1, or 0 with --small)")
    parser.add_argument("--mnist-share", type=_share, metavar="F",
                        help="the part of each digit class's weight that MNIST's samples carry, the rest the "
                             "generated ones' (default: as many as they are, about 0.84; v0018's members: about 0.54)")
    parser.add_argument("--small", action="store_true", default=None, help="tiny data set and 1 epoch: checks the machinery only")
    parser.add_argument("--resume", metavar="RUN",
                        help="continue the run with this id from its last epoch, with the arguments it was started with")
    parser.add_argument("--runs-dir", type=Path, default=RUNS_DIR, help="where checkpoints of runs live")
    parser.add_argument("--models-dir", type=Path, help="registry root (default: $MODELS_DIR or models/)")
    parser.add_argument("--promote", action="store_true", help="make the new version ACTIVE")
    parser.add_argument("--force-promote", action="store_true", help="with --promote: even below the real-handwriting floors")
    parser.add_argument("--real-data", type=Path, default=validate_real.DEFAULT_DATA, help="CROHME validation folder")
    return parser.parse_args(argv)


def _write_json(path: Path, value) -> None:
    """Write whole or not at all: a kill mid-write leaves no half file."""
    write_atomically(path, json.dumps(value, indent=2))


def _check_same_data(run_dir: Path, data_key: str) -> str | None:
    """Record the run's data set (its cache key: the digits, the generator's and the
    preprocessing's code, the split) when it starts; on --resume, refuse other data: the code
    may have changed since, and the run would go on training on a different set."""
    saved_file = run_dir / ARGS_FILE
    saved = json.loads(saved_file.read_text())
    started_with = saved.get("data_key")
    if started_with is None:
        _write_json(saved_file, {**saved, "data_key": data_key})
        return None
    if started_with != data_key:
        return (f"run {run_dir.name!r} was started on data set {started_with} and this code builds {data_key} "
                "(the digits, or the generator's or preprocessing's code, changed since): start a new run")
    return None


def _given_run_arguments(args: argparse.Namespace) -> dict:
    """The run-defining arguments given on this command line (an omitted one is None)."""
    values = {name: getattr(args, name) for name in RUN_DEFAULTS}
    for name in PATH_ARGUMENTS:
        if values[name] is not None:
            values[name] = str(Path(values[name]).resolve())
    return values


def _describe(name: str, value) -> str:
    flag = "--" + name.replace("_", "-")
    if name == "small":
        return flag if value else f"no {flag}"
    return f"no {flag}" if value is None else f"{flag} {value}"


def settle_run_arguments(args: argparse.Namespace, run_dir: Path, command: str) -> str | None:
    """Fix the run-defining arguments in ``args``; return an error message, or None.

    A new run fills in the defaults and saves them in ``run_dir/args.json``. ``--resume``
    restores the saved ones; one given again must agree with them, otherwise the resumed
    run would continue with other data, loss or schedule.
    """
    given = _given_run_arguments(args)
    saved_file = run_dir / ARGS_FILE
    if args.resume and saved_file.exists():
        saved = json.loads(saved_file.read_text())
        # Runs saved before --stroke-method existed used the default (one older still, the skeleton,
        # is refused below by its data set's key).
        arguments = {"stroke_method": DEFAULT_STROKE_METHOD, **saved["arguments"]}
        conflicts = [
            f"{_describe(name, value)} (the run was started with {_describe(name, arguments.get(name))})"
            for name, value in given.items()
            if value is not None and value != arguments.get(name) and name not in OVERRIDABLE_ON_RESUME
        ]
        if conflicts:
            return (
                f"run {args.resume!r} cannot be resumed with other arguments: " + "; ".join(conflicts)
                + ". Leave them out to continue the run as it was started, or start a new run."
            )
        args.run_command = saved.get("command")
        overridden = {name: given[name] for name in OVERRIDABLE_ON_RESUME if given[name] not in (None, arguments.get(name))}
        if overridden:  # saved, so that a later --resume goes on where this one went
            arguments = {**arguments, **overridden}
            _write_json(saved_file, {**saved, "arguments": arguments})
    else:
        if args.resume:
            print(f"warning: run {args.resume!r} has no {ARGS_FILE} (started before it was saved): "
                  "continuing with this command's arguments", file=sys.stderr)
        arguments = {name: RUN_DEFAULTS[name] if value is None else value for name, value in given.items()}
        if arguments["epochs"] is None:
            arguments["epochs"] = 1 if arguments["small"] else 14
        if arguments["models_dir"] is None:
            from models import registry

            arguments["models_dir"] = str(registry.models_dir().resolve())
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_json(saved_file, {"arguments": arguments, "command": command,
                                 "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        args.run_command = command
    for name, value in arguments.items():
        setattr(args, name, Path(value) if name in PATH_ARGUMENTS and value is not None else value)
    return None


def claim_version(root: Path) -> tuple[str, Path]:
    """Pick the next free version name and create its staging folder ``.vNNNN.partial``.

    A staging folder counts as taken: it is another run writing that version, or what a
    crashed one left (for a person to inspect and delete); either way a later run never
    collides with it. The claim and the final rename both hold the registry's lock: otherwise
    a run could find a name free in the instant another run renamed its staging folder to it,
    and claim it again (seen with 8 runs claiming at once).
    """
    from models import registry

    with registry._exclusive(root):
        partials = [int(m.group(1)) for p in root.iterdir() if (m := PARTIAL_PATTERN.match(p.name))]
        number = max([int(registry.next_version_name(root)[1:]), *(n + 1 for n in partials)])
        while True:
            version = f"v{number:04d}"
            staging = root / f".{version}.partial"
            if not (root / version).exists():
                try:
                    staging.mkdir()
                    return version, staging
                except FileExistsError:
                    pass
            number += 1


@contextmanager
def staged_version(root: Path):
    """Yield (version, staging folder) to fill; on success it becomes ``root/version``.

    If writing fails, the staging folder is removed, so it neither lingers nor blocks later runs.
    """
    from models import registry

    version, staging = claim_version(root)
    try:
        yield version, staging
        with registry._exclusive(root):  # see claim_version
            staging.rename(root / version)  # the name was claimed above; nothing else writes it
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def written_version(run_dir: Path, models_dir: Path | None) -> str | None:
    """The complete version this run wrote, if it got that far."""
    from models import registry

    claimed = run_dir / VERSION_FILE
    if not claimed.exists():
        return None
    version = claimed.read_text().strip()
    if version not in registry.list_versions(models_dir):
        return None  # writing it failed, and its name was freed: maybe taken since by another run
    return version if registry.load_config(version, models_dir).get("run_id") == run_dir.name else None


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def cosine_schedule(base: float, epochs: int):
    """Learning rate by epoch: a pure function of the epoch, so --resume continues it exactly."""
    def rate(epoch: int, _current: float) -> float:
        return float(base * 0.5 * (1 + np.cos(np.pi * epoch / max(1, epochs))) + base * 0.01)
    return rate


def predict(model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    return np.concatenate([model(x[i : i + batch_size], training=False).numpy() for i in range(0, len(x), batch_size)])


def held_out_metrics(model, arrays: dict) -> tuple[dict, np.ndarray, np.ndarray]:
    """Accuracy per source and class. A symbol is scored by its best symbol class, as the
    pipeline reads a group that has no cut; a touching pair by whether the model calls it
    not one symbol, and ``symbols_called_not_one`` is how often it says that of a single one."""
    x, y, sources = dataset.to_float(arrays["x_test"]), arrays["y_test"], arrays["src_test"]
    probabilities = predict(model, x)
    pair = y == NOT_ONE_SYMBOL_INDEX
    predicted = np.where(pair, probabilities.argmax(axis=1), symbol_columns(probabilities).argmax(axis=1))
    metrics = {"accuracy": float((predicted == y).mean()), "n": int(len(y))}
    for source in np.unique(sources):
        mask = sources == source
        metrics[f"{source.replace('-', '_')}_accuracy"] = float((predicted[mask] == y[mask]).mean())
    if probabilities.shape[1] > NOT_ONE_SYMBOL_INDEX:
        metrics["symbols_called_not_one"] = float((probabilities[~pair].argmax(axis=1) == NOT_ONE_SYMBOL_INDEX).mean())
    metrics["per_class"] = {MODEL_CLASSES[c]: float((predicted[y == c] == c).mean()) for c in range(len(MODEL_CLASSES)) if (y == c).any()}
    return metrics, y, predicted


def evaluate_model(model, arrays: dict, real_data: Path, stroke_method: str) -> tuple[dict, dict, np.ndarray, np.ndarray]:
    """Held-out metrics, the calibration temperature fitted on the validation split, and the
    real-handwriting validation when its folder is present (read with ``stroke_method``, the
    data set's). Returns (metrics, calibration, test labels, test predictions)."""
    test_metrics, y_test, predicted = held_out_metrics(model, arrays)
    print("held-out test: " + json.dumps({k: round(v, 4) for k, v in test_metrics.items() if k.endswith("accuracy")}), flush=True)
    y_val = arrays["y_val"]
    val_probabilities = predict(model, dataset.to_float(arrays["x_val"]))
    metrics = {"test": test_metrics, "validation_accuracy": float((val_probabilities.argmax(1) == y_val).mean())}
    # Honest confidences for the decoder and the pictures (see workers.pipeline.calibration).
    temperature = calibration.fit_temperature(val_probabilities, y_val)
    calibrated = {
        "temperature": temperature,
        "fitted_on": "validation split",
        "validation_nll_before": calibration.negative_log_likelihood(val_probabilities, y_val),
        "validation_nll_after": calibration.negative_log_likelihood(calibration.apply_temperature(val_probabilities, temperature), y_val),
    }
    print(f"calibration: temperature {temperature}", flush=True)
    if (real_data / "symbols" / "manifest.csv").exists():
        print("validating on real handwriting ...", flush=True)
        real = validate_real.evaluate(lambda b: model(b, training=False).numpy(), validate_real.load_symbols(real_data), stroke_method)
        metrics["real_handwriting"] = real
        print(validate_real.format_report(real), flush=True)
    return metrics, calibrated, y_test, predicted


def common_provenance(model, calibrated: dict, data_provenance: dict, started: float) -> dict:
    """What every version's ``config.json`` records whoever made it (a training run, an
    ensemble): when, how long, the preprocessing, calibration, data set and library versions."""
    import keras
    import tensorflow as tf

    return {
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_time_s": round(time.time() - started, 1),
        "preprocess": preprocess_config(data_provenance["config"]["stroke_method"]),
        "calibration": calibrated,
        "dataset": data_provenance,
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__},
        "parameters": int(model.count_params()),
    }


def write_version_files(folder: Path, provenance: dict, metrics: dict, y_test: np.ndarray, predicted: np.ndarray) -> None:
    """Everything of a version folder but ``model.keras``: labels, config, metrics, report."""
    version = provenance["version"]
    (folder / "labels.json").write_text(json.dumps({"classes": list(MODEL_CLASSES), "display": DISPLAY}, indent=2))
    (folder / "config.json").write_text(json.dumps(provenance, indent=2))
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    write_confusion_png(y_test, predicted, folder / "confusion.png", f"{version}: held-out test split")
    write_report(folder, version, metrics, provenance)


def write_confusion_png(y: np.ndarray, predicted: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    labels = [DISPLAY.get(c, c) if c != NOT_ONE_SYMBOL else "pair" for c in MODEL_CLASSES]
    figure, axes = plt.subplots(figsize=(9, 8))
    ConfusionMatrixDisplay.from_predictions(
        y, predicted, labels=list(range(len(MODEL_CLASSES))), display_labels=labels, ax=axes, colorbar=False, cmap="Blues"
    )
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def write_report(folder: Path, version: str, metrics: dict, provenance: dict) -> None:
    test = metrics["test"]
    lines = [
        f"# Model {version}",
        "",
        f"Trained {provenance['finished_at']} in {provenance['wall_time_s'] / 60:.1f} min, commit `{provenance['git_commit']}`.",
        f"Command: `{provenance['command']}`",
        "",
        "## Held-out data (never trained on)",
        "",
        "| set | accuracy |",
        "|---|---|",
    ]
    for key, value in sorted(test.items()):
        if key.endswith("accuracy"):
            lines.append(f"| {key.removesuffix('_accuracy') if key != 'accuracy' else 'all'} | {value:.2%} |")
    lines += ["", "![confusion matrix on the held-out test split](confusion.png)", ""]
    real = metrics.get("real_handwriting")
    if real:
        lines += [
            "## Real handwriting (CROHME symbols, validation only)",
            "",
            "Writers split in two fixed halves; decisions were tuned on one, figures are reported on the other.",
            "",
            validate_real.format_report(real),
            "",
            "Most frequent confusions on the report half: "
            + ", ".join(f"`{k}` {v}" for k, v in real["report"]["top_confusions"].items()),
            "",
        ]
    (folder / "report.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    commit = git_commit()  # the code as it was when training began
    command = shlex.join([sys.executable.rsplit("/", 1)[-1], "-m", "training.train", *(argv if argv is not None else sys.argv[1:])])
    run_id = args.resume or datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + f"{os.getpid()}"
    run_dir = args.runs_dir / run_id
    if args.resume and not run_dir.exists():
        print(f"error: no run {run_id!r} under {args.runs_dir}", file=sys.stderr)
        return 2
    error = settle_run_arguments(args, run_dir, command)
    if error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.resume and (written := written_version(run_dir, args.models_dir)):
        print(f"run {run_id} already wrote {written}; nothing left to train", flush=True)
        if args.promote:
            from models import registry

            registry.promote(written, args.models_dir, force=args.force_promote)
            print(f"promoted {written}", flush=True)
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf
    from sklearn.utils.class_weight import compute_class_weight

    from models import registry
    from training.model import build_model

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(args.seed)
    epochs = args.epochs

    # 1. Data: real MNIST + generated symbols, all through the shared preprocessing.
    config = dataset_config(args)
    channels = len(stroke_channels(args.stroke_method))  # the model's inputs: one per method
    print("preparing data ...", flush=True)
    arrays, data_provenance = dataset.load_or_build(config, args.mnist)
    error = _check_same_data(run_dir, data_provenance["cache_key"])
    if error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    x_train, y_train = dataset.to_float(arrays["x_train"]), arrays["y_train"]
    x_val, y_val = dataset.to_float(arrays["x_val"]), arrays["y_val"]
    print(f"train {len(y_train)}  val {len(y_val)}  test {len(arrays['y_test'])}", flush=True)
    # Balanced weights correct the digit/operator imbalance of the mix. Training weighs each
    # sample (sample_weights: the same balance, and with --mnist-share the split within each
    # digit class); the class weights are what the version records of that balance.
    present = np.unique(y_train)
    weights = compute_class_weight("balanced", classes=present, y=y_train)
    class_weight = {int(c): float(w) for c, w in zip(present, weights)}
    train_weights = sample_weights(y_train, arrays["src_train"], args.mnist_share)

    if (run_dir / FIT_DONE_FILE).exists() and (run_dir / "last.keras").exists():
        # Training finished before a crash in evaluation or writing: BackupAndRestore has
        # already deleted its backup, so fitting again would start over from epoch 0.
        print(f"run {run_id}: training had finished; evaluating {run_dir / 'last.keras'}", flush=True)
        model = keras.models.load_model(run_dir / "last.keras", compile=False)
    else:
        # 2. Model.
        model = build_model(len(MODEL_CLASSES), width=args.width, channels=channels)
        if args.label_smoothing:  # Keras smooths only one-hot targets
            loss = keras.losses.CategoricalCrossentropy(label_smoothing=args.label_smoothing)
            fit_train, fit_val = keras.utils.to_categorical(y_train, len(MODEL_CLASSES)), keras.utils.to_categorical(y_val, len(MODEL_CLASSES))
        else:
            loss, fit_train, fit_val = keras.losses.SparseCategoricalCrossentropy(), y_train, y_val
        model.compile(optimizer=keras.optimizers.Adam(args.learning_rate), loss=loss, metrics=["accuracy"])

        # 3. Train, checkpointing every epoch so that --resume can continue.
        print(f"run {run_id}: checkpoints in {run_dir}", flush=True)
        model.fit(
            x_train,
            fit_train,
            validation_data=(x_val, fit_val),
            epochs=epochs,
            batch_size=args.batch_size,
            sample_weight=train_weights,
            shuffle=True,
            verbose=1 if sys.stdout.isatty() else 2,
            callbacks=[
                # First, so that its on_train_end runs while the backup still exists: there
                # is no moment at which a crash leaves neither the backup nor the marker.
                keras.callbacks.LambdaCallback(
                    on_train_end=lambda logs: _write_json(
                        run_dir / FIT_DONE_FILE,
                        {"epochs": epochs, "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")},
                    )
                ),
                keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
                keras.callbacks.ModelCheckpoint(str(run_dir / "last.keras")),
                keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
                keras.callbacks.LearningRateScheduler(cosine_schedule(args.learning_rate, epochs)),
            ],
        )

    # 4. Evaluate on held-out data and on real handwriting.
    metrics, calibrated, y_test, predicted = evaluate_model(model, arrays, args.real_data, config.stroke_method)

    # 5. Write the new version folder (never an existing one).
    root = args.models_dir or registry.models_dir()
    root.mkdir(parents=True, exist_ok=True)
    with staged_version(root) as (version, staging):  # removed again if anything below fails
        registry.write_atomically(run_dir / VERSION_FILE, version + "\n")
        # Ship weights only: a fresh, uncompiled copy carries no optimizer state.
        serving = build_model(len(MODEL_CLASSES), width=args.width, channels=channels)
        serving.set_weights(model.get_weights())
        serving.save(staging / "model.keras")
        provenance = {
            "version": version,
            "command": command,
            "run_command": args.run_command,  # the command that started the run (the same unless resumed)
            "git_commit": commit,
            "run_id": run_id,
            "hyperparameters": {
                "epochs": epochs,
                "batch_size": args.batch_size,
                "learning_rate": args.learning_rate,
                "label_smoothing": args.label_smoothing,
                "seed": args.seed,
                "width": args.width,
                "class_weight": class_weight,
                "mnist_share": args.mnist_share,
            },
            **common_provenance(model, calibrated, data_provenance, started),
        }
        write_version_files(staging, provenance, metrics, y_test, predicted)
    print(f"wrote {root / version} ({(root / version / 'model.keras').stat().st_size / 1e6:.2f} MB)", flush=True)
    if args.promote:
        registry.promote(version, root, force=args.force_promote)
        print(f"promoted {version}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
