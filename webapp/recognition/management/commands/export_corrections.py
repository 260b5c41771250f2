"""Export users' corrections as a labelled dataset of 28×28 crops (licence-clean real handwriting).

Writes ``DIR/crops/NNNNNN.png`` (one model input per symbol, ink bright: the 28×28
first input channel that :func:`workers.pipeline.preprocess.crops_to_batch` produced) and
``DIR/labels.csv`` (file, label, job, line, read_as, expression, model_version). A crop
is prepared the way the version that read it prepares crops (its ``stroke_method``; for a
version that reads crops both ways, its first channel's), so training on the crops should
use the same method: ``model_version`` says which. Only
corrections with one class per crop become symbols; ``DIR/corrections.json``
lists every correction.
"""
import csv
import io
import json
from pathlib import Path

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand
from PIL import Image

from webapp.recognition.models import Correction
from webapp.recognition.services import CROP_SIZE


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path)

    def handle(self, directory: Path, **options):
        (directory / "crops").mkdir(parents=True, exist_ok=True)
        rows, listed = [], []
        for correction in Correction.objects.select_related("job").order_by("created_at"):
            listed.append({
                "job": str(correction.job_id), "line": correction.line, "read_as": correction.read_as,
                "expression": correction.expression, "created_at": correction.created_at.isoformat(),
            })
            if not (correction.labels and correction.crops):
                continue
            with default_storage.open(correction.crops, "rb") as handle:
                strip = Image.open(io.BytesIO(handle.read())).convert("L")
            for index, label in enumerate(correction.labels):
                name = f"crops/{len(rows):06d}.png"
                strip.crop((index * CROP_SIZE, 0, (index + 1) * CROP_SIZE, CROP_SIZE)).save(directory / name)
                rows.append([name, label, correction.job_id, correction.line, correction.read_as, correction.expression,
                             correction.job.model_version])
        with open(directory / "labels.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file", "label", "job", "line", "read_as", "expression", "model_version"])
            writer.writerows(rows)
        (directory / "corrections.json").write_text(json.dumps(listed, indent=1))
        self.stdout.write(f"{len(listed)} corrections, {len(rows)} labelled symbols -> {directory}")
