"""Read handwritten arithmetic from image files on the command line.

    python -m workers.cli solve IMAGE... [--json] [--explain DIR] [--model VERSION] [--threads N]

With --json it prints ONE JSON array, one record per input file in input order:
{"file", "lines": [{"expression", "value", "answer", "correct", "confidence",
"symbols": [{"box", "top3"}]}], "error": {"code", "message", "best_reading", "position"} | null}.
One bad file never stops the others; the exit code is 1 when any file failed,
and it is set only after every file is printed. A model that cannot be loaded, or that
answers NaN (``ModelFault``), is no file's fault and makes every reading untrustworthy: the
CLI stops with exit code 2 and says why on stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

from models.registry import RegistryError
from workers.pipeline.classify import ModelFault
from workers.pipeline.errors import RecognitionError


def solve_file(path: Path, classifier, explain_dir: Path | None) -> dict:
    """One file's record; ``explain_dir``: where its step pictures go (None: none)."""
    try:
        return _solve(path, classifier, explain_dir)
    except ModelFault:
        raise  # the model's fault, not the file's
    except Exception as error:  # noqa: BLE001 - one bad file never stops the others
        from workers.pipeline.recognize import record

        traceback.print_exc(file=sys.stderr)
        return record(str(path), error=RecognitionError("internal_error", f"unexpected {type(error).__name__}: {error}"))


def _solve(path: Path, classifier, explain_dir: Path | None) -> dict:
    from workers.pipeline import explain
    from workers.pipeline.recognize import record, recognize

    try:
        data = path.read_bytes()
    except OSError as error:
        return record(str(path), error=RecognitionError("unreadable_file", f"cannot read {path}: {error.strerror}"))
    try:
        result = recognize(data, classifier)
    except RecognitionError as error:
        return record(str(path), error=error)
    if explain_dir is not None:
        explain_dir.mkdir(parents=True, exist_ok=True)
        for name, png in explain.explain(result).items():
            (explain_dir / f"{name}.png").write_bytes(png)
    return record(str(path), result)


def _explain_folders(paths: list[Path], root: Path) -> list[Path]:
    """DIR/<image name>/ for each input; a name met again (a/p.png and b/p.png, or p.png and
    p.jpg) gets the next free -2, -3, ... so that no file's pictures overwrite another's (not
    even those of an input named p-2.png)."""
    folders, used = [], set()
    for path in paths:
        name, number = path.stem, 1
        while name in used:
            number += 1
            name = f"{path.stem}-{number}"
        used.add(name)
        folders.append(root / name)
    return folders


def _human(record: dict) -> str:
    if record["error"] and not record["lines"]:
        return f"{record['file']}: error {record['error']['code']}: {record['error']['message']}"
    out = [f"{record['file']}:"]
    for number, line in enumerate(record["lines"], 1):
        if line["error"]:
            out.append(f"  {number}. {line['error'].get('best_reading') or line['expression']}  ? {line['error']['message']}")
            continue
        text = f"  {number}. {line['expression']} = {line['value']}"
        if line["answer"] is not None:
            text += f"   (written {line['answer_expression']}: {'correct' if line['correct'] else 'wrong'})"
        out.append(text + f"   [confidence {line['confidence']:.2f}]")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.cli", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    solve = commands.add_parser("solve", help="read and evaluate images")
    solve.add_argument("images", nargs="+", type=Path)
    solve.add_argument("--json", action="store_true", help="print one JSON array")
    solve.add_argument("--explain", type=Path, metavar="DIR", help="write the step pictures under DIR/<image name>/")
    solve.add_argument("--model", help="model version (default: ACTIVE)")
    solve.add_argument("--threads", type=int, default=1, help="TensorFlow threads (default 1)")
    args = parser.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):  # a file name that is not valid UTF-8 is printed escaped
        sys.stdout.reconfigure(errors="backslashreplace")

    from workers.pipeline.classify import SymbolClassifier

    records = []
    folders = _explain_folders(args.images, args.explain) if args.explain else [None] * len(args.images)
    try:
        classifier = SymbolClassifier(args.model, threads=args.threads)
    except (RegistryError, OSError, ValueError) as error:  # no such version, unreadable files, other classes
        print(f"error: no model to read with: {error}", file=sys.stderr)
        return 2
    try:
        for path, folder in zip(args.images, folders):
            record = solve_file(path, classifier, folder)
            records.append(record)
            if not args.json:
                print(_human(record), flush=True)
    except ModelFault as fault:  # no reading of any file can be trusted
        print(f"error: {fault}", file=sys.stderr)
        return 2
    if args.json:
        # ASCII escapes: a file name that is not valid UTF-8 (kept by Python as surrogates) must
        # not stop the array from being printed.
        print(json.dumps(records, indent=1))
    return 1 if any(r["error"] for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
