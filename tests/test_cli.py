"""The CLI reads several files with the committed model and prints one JSON array in order."""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from training.compose import render_line

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_json_records_in_input_order_and_a_bad_file_does_not_stop_the_others(tmp_path):
    rng = np.random.default_rng(99)
    line, _ = render_line("7*8=56", rng, height=64)
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), 255 - line)
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((300, 700), 255, np.uint8))
    again = tmp_path / "b" / "good.png"  # the same name in another folder: its pictures go to good-2/
    again.parent.mkdir()
    again.write_bytes(good.read_bytes())
    named_like_a_second = tmp_path / "c" / "good-2.png"  # ...and one whose own name is good-2: good-2-2/
    named_like_a_second.parent.mkdir()
    named_like_a_second.write_bytes(good.read_bytes())
    not_utf8 = tmp_path / os.fsdecode(b"good\xffname.png")  # a file name that is not valid UTF-8
    not_utf8.write_bytes(good.read_bytes())
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    inputs = [bad, good, blank, again, named_like_a_second, not_utf8]
    process = subprocess.run(
        [sys.executable, "-m", "workers.cli", "solve", *map(str, inputs), "--json", "--explain", str(tmp_path / "explain")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert process.returncode == 1, process.stderr
    records = json.loads(process.stdout)
    assert [r["file"] for r in records] == [str(path) for path in inputs]
    assert records[4]["lines"] == records[5]["lines"] == records[1]["lines"]
    assert records[0]["error"]["code"] == "not_an_image" and records[0]["lines"] == []
    assert records[2]["error"]["code"] == "no_symbols"
    (first,) = records[1]["lines"]
    assert first["expression"] == "7*8" and first["value"] == 56
    assert first["answer"] == 56 and first["answer_expression"] == "56" and first["correct"] is True
    assert len(first["symbols"]) == 6 and all(len(s["top3"]) == 3 for s in first["symbols"])
    assert records[1]["error"] is None
    assert records[3]["lines"] == records[1]["lines"]
    for picture in ("binarised", "boxes", "crops", "summary"):
        for folder in ("good", "good-2", "good-2-2", os.fsdecode(b"good\xffname")):
            assert (tmp_path / "explain" / folder / f"{picture}.png").read_bytes()[:4] == b"\x89PNG"


def test_a_model_that_does_not_exist_stops_with_exit_code_2_and_says_so(tmp_path):
    image = tmp_path / "line.png"
    cv2.imwrite(str(image), 255 - render_line("1+1", np.random.default_rng(1), height=64)[0])
    process = subprocess.run([sys.executable, "-m", "workers.cli", "solve", str(image), "--json", "--model", "v9999"],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    assert process.returncode == 2 and process.stdout == ""
    assert "no model to read with" in process.stderr and "v9999" in process.stderr and "Traceback" not in process.stderr
