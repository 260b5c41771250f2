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
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.run(
        [sys.executable, "-m", "workers.cli", "solve", str(bad), str(good), str(blank), str(again), "--json", "--explain", str(tmp_path / "explain")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert process.returncode == 1, process.stderr
    records = json.loads(process.stdout)
    assert [r["file"] for r in records] == [str(bad), str(good), str(blank), str(again)]
    assert records[0]["error"]["code"] == "not_an_image" and records[0]["lines"] == []
    assert records[2]["error"]["code"] == "no_symbols"
    (first,) = records[1]["lines"]
    assert first["expression"] == "7*8" and first["value"] == 56
    assert first["answer"] == 56 and first["answer_expression"] == "56" and first["correct"] is True
    assert len(first["symbols"]) == 6 and all(len(s["top3"]) == 3 for s in first["symbols"])
    assert records[1]["error"] is None
    assert records[3]["lines"] == records[1]["lines"]
    for picture in ("binarised", "boxes", "crops", "summary"):
        for folder in ("good", "good-2"):
            assert (tmp_path / "explain" / folder / f"{picture}.png").read_bytes()[:4] == b"\x89PNG"
