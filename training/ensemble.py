"""Combine trained versions into one model that averages their probabilities, as a NEW version.

    python -m training.ensemble v0011 v0012 v0013 [--promote [--force-promote]]

Runs of one recipe that differ only in their seed err on different real symbols: their mean
reads more whole expressions than any one of them (see the README, "How good is it"). The
members become nested models of one Keras model (one ``model.keras`` under 2 MB, one batched
call per page, served like any version). The new folder is written as ``train`` writes one:
the temperature is fitted on the validation split, the metrics are measured on the held-out
test split and the real handwriting, and ``config.json`` names the members.

Members trained on different stroke methods (``skeleton`` and ``band``) err on different crops
still: the ensemble then reads each crop both ways, one input channel per method (its stroke
method ``skeleton+band``), and each member its own channel.

The members must have been trained on the same data set (the same split checksums, or with
different stroke methods the same MNIST file, split and seeds): otherwise one member's test
digits could be another's training digits, and the held-out figures would lie.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

from training import dataset, validate_real
from training.train import common_provenance, evaluate_model, git_commit, staged_version, write_version_files
from workers.pipeline.preprocess import joined_stroke_method, stroke_channels, stroke_method_of
from workers.pipeline.symbols import MODEL_CLASSES


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.ensemble", description=__doc__.splitlines()[0])
    parser.add_argument("members", nargs="+", metavar="VERSION", help="two or more versions of the registry")
    parser.add_argument("--models-dir", type=Path, help="registry root (default: $MODELS_DIR or models/)")
    parser.add_argument("--promote", action="store_true", help="make the new version ACTIVE")
    parser.add_argument("--force-promote", action="store_true", help="with --promote: even below the real-handwriting floors")
    parser.add_argument("--real-data", type=Path, default=validate_real.DEFAULT_DATA, help="CROHME validation folder")
    return parser.parse_args(argv)


def check_members(members: list[str], root: Path) -> str | None:
    """Why these versions cannot be combined, or None."""
    from models import registry

    if len(set(members)) < 2:
        return "an ensemble needs two or more different versions"
    missing = [v for v in members if v not in registry.list_versions(root)]
    if missing:
        return f"no such version in {root}: {', '.join(missing)}"
    for version in members:
        if tuple(registry.load_labels(version, root)) != tuple(MODEL_CLASSES):
            return f"{version} does not have the classes {list(MODEL_CLASSES)}"
    configs = {version: registry.load_config(version, root) for version in members}
    methods = {version: stroke_method_of(config) for version, config in configs.items()}
    if any("+" in method for method in methods.values()):
        return "a member reads more than one input channel: " + json.dumps(methods)
    if len(set(methods.values())) == 1:
        # The splits' checksums, not the cache key: that also hashes the code that drew them, and
        # a comment changed since gives the same arrays another key.
        checksums = {version: config.get("dataset", {}).get("sha256") for version, config in configs.items()}
        if None in checksums.values() or any(value != checksums[members[0]] for value in checksums.values()):
            return "the members were not trained on the same data set (split checksums: " + json.dumps(checksums) + ")"
        return None
    # Members that read crops differently hold differently preprocessed arrays: the same data set
    # is the same MNIST file split and drawn from the same seeds and sizes.
    sources = {version: _data_source(config) for version, config in configs.items()}
    if any(not value["mnist_sha256"] or not value["config"] for value in sources.values()) \
            or any(value != sources[members[0]] for value in sources.values()):
        return "the members were not trained on the same data set (MNIST file and split settings: " + json.dumps(sources) + ")"
    return None


def _data_source(config: dict) -> dict:
    """What a version's data set was drawn from, whatever its stroke method."""
    data = config.get("dataset", {})
    return {"mnist_sha256": data.get("mnist_sha256"),
            "config": {key: value for key, value in data.get("config", {}).items() if key not in ("stroke_method", "workers")}}


def build_ensemble(members: list, channels: list[int] | None = None, name: str = "symbol_cnn_ensemble"):
    """One Keras model whose output is the mean of the members' probabilities.

    ``channels``: the input channel each member reads (by default all read the one channel), for
    members trained on different stroke methods: the input then has a channel per method.
    """
    import keras

    from workers.pipeline.preprocess import INPUT_SIZE

    channels = channels or [0] * len(members)
    crop = keras.Input(shape=(INPUT_SIZE, INPUT_SIZE, max(channels) + 1), name="crop")
    outputs = []
    for index, (member, channel) in enumerate(zip(members, channels)):
        member.name = f"member_{index + 1}"  # layer names must be unique in one model
        member.trainable = False
        outputs.append(member(crop if crop.shape[-1] == 1 else crop[..., channel : channel + 1]))
    average = keras.layers.Average(name="probabilities")(outputs)
    return keras.Model(crop, average, name=name)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    from models import registry

    root = args.models_dir or registry.models_dir()
    error = check_members(args.members, root)
    if error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    command = shlex.join(["python", "-m", "training.ensemble", *(argv if argv is not None else sys.argv[1:])])
    commit = git_commit()
    configs = {version: registry.load_config(version, root) for version in args.members}
    first = configs[args.members[0]]

    # The members' own data set, rebuilt from the cache: the same validation and test splits,
    # each sample read the ways the members read it (one channel per stroke method).
    source = first["dataset"]["mnist_source"]
    mnist_source = dataset.mnist.source_for(source)
    member_methods = [stroke_method_of(configs[version]) for version in args.members]
    stroke_method = joined_stroke_method(member_methods)
    data_config = replace(dataset.DatasetConfig.from_dict(first["dataset"]["config"]), stroke_method=stroke_method)
    arrays, data_provenance = dataset.load_or_build(data_config, mnist_source)
    channels = [stroke_channels(stroke_method).index(method) for method in member_methods]
    model = build_ensemble([registry.load_model(version, root) for version in args.members], channels)

    metrics, calibrated, y_test, predicted = evaluate_model(model, arrays, args.real_data, stroke_method)

    with staged_version(root) as (version, staging):
        model.save(staging / "model.keras")
        provenance = {
            "version": version,
            "command": command,
            "git_commit": commit,
            "ensemble": {
                "members": args.members,
                "member_stroke_methods": dict(zip(args.members, member_methods)),
                "combination": "mean of the members' probabilities (uncalibrated), then this version's temperature",
                "member_hyperparameters": {v: configs[v].get("hyperparameters") for v in args.members},
            },
            **common_provenance(model, calibrated, data_provenance, started),
        }
        write_version_files(staging, provenance, metrics, y_test, predicted)
    print(f"wrote {root / version} ({(root / version / 'model.keras').stat().st_size / 1e6:.2f} MB), the mean of {', '.join(args.members)}", flush=True)
    if args.promote:
        registry.promote(version, root, force=args.force_promote)
        print(f"promoted {version}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
