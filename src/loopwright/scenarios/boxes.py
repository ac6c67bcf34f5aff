"""Scenario ``boxes``: real handwritten digits placed on larger canvases, found as labelled boxes.

Data: scikit-learn's ``load_digits`` (1,797 real 8x8 scans; UCI Optical Recognition of
Handwritten Digits, CC BY 4.0), shipped in the scikit-learn wheel. A documented derivation: each
canvas is 48x48 pixels of light paper with faint seeded noise, holding 1-3 digits, each scan
upsampled to 16x16 (nearest neighbour) and pasted in dark ink at a random position where it does
not touch another; the pasted squares and the scans' digits are the truth. Canvases are written
as PNG files under ``out/canvases``, the project's media root, and items reference them
relative to it.

The loop: canvases stream in rounds. A sliding-window detector (HOG-free: standardised 8x8
crops, logistic regression, NMS; :class:`SlidingWindowDetector`) trained on the resolved boxes
proposes boxes with scores; they travel with the item (payload ``proposals``). Candidates scored
0.2 or more are weighed: those at 0.5 or more are proposed, and an item's confidence is its least
certain candidate ``min max(s, 1 - s)``. It auto-accepts only above a threshold certified on a
uniform audit sample (error ≤ ε with probability ≥ 1 - δ), where an accepted canvas is wrong
unless its boxes match the truth one to one at IoU ≥ 0.5 with the same digits (the audit
sample is reviewed, never trained on, and rescored by each new champion). Everything else
is reviewed by simulated people through the review API (two answers, fused by ``task: boxes``; a
box found by one of two, or an even label split, escalates to an expert). The resolved boxes
train the next challenger, which the mAP@0.5 gate (paired bootstrap over images on a frozen
eval share of the human labels) promotes or rejects.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from loopwright.api import connect
from loopwright.config import ProjectConfig
from loopwright.consensus.boxes import agreement_report
from loopwright.learning.detection import mean_average_precision
from loopwright.learning.detector import SlidingWindowDetector
from loopwright.loop.review import Assignment
from loopwright.scenarios import Answer, all_annotations, fresh_db, write
from loopwright.scenarios.structured import Spec, run_rounds
from loopwright.shapes import Box, least_confident
from loopwright.tasks.boxes import PROPOSALS, canonical, correct, decode
from loopwright.tasks.boxes import gate as box_gate

LABELS = [str(d) for d in range(10)]
SIDE, DIGIT = 48, 16  # canvas and pasted digit, pixels
PAPER, INK = 240.0, 15.0
ROUND_SIZE = 100
QUICK_ROUNDS, FULL_ROUNDS = 4, 12
HELD_OUT = 80
AUDIT_RATE = 0.25
EPSILON, DELTA = 0.05, 0.1
MIN_TRAIN = 30
PROPOSE_AT, CANDIDATE_AT = 0.5, 0.2


def canvas(
    scans: NDArray[np.float64], digits: NDArray[np.int_], rng: np.random.Generator
) -> tuple[NDArray[np.uint8], list[Box]]:
    """One canvas holding ``scans`` (8x8, 0..16 ink) at non-touching random places, and its boxes."""
    image = np.full((SIDE, SIDE), PAPER) + rng.normal(0.0, 4.0, (SIDE, SIDE))
    boxes: list[Box] = []
    for scan, digit in zip(scans, digits, strict=True):
        for _ in range(50):
            x, y = (2 * int(v) for v in rng.integers(0, (SIDE - DIGIT) // 2 + 1, 2))  # on even pixels
            if all(
                x + DIGIT + 1 < b.x or b.x + b.w + 1 < x or y + DIGIT + 1 < b.y or b.y + b.h + 1 < y
                for b in boxes
            ):
                break
        else:
            continue  # no room left: fewer digits on this canvas
        ink = np.kron(scan.reshape(8, 8) / 16.0, np.ones((2, 2)))
        patch = image[y : y + DIGIT, x : x + DIGIT]
        image[y : y + DIGIT, x : x + DIGIT] = patch * (1.0 - ink) + INK * ink
        boxes.append(Box(float(x), float(y), float(DIGIT), float(DIGIT), str(int(digit))))
    return np.clip(np.round(image), 0, 255).astype(np.uint8), sorted(boxes, key=lambda b: (b.y, b.x))


def make_canvases(
    X: NDArray[np.float64], y: NDArray[np.int_], n: int, rng: np.random.Generator
) -> list[tuple[NDArray[np.uint8], list[Box]]]:
    out = []
    for _ in range(n):
        pick = rng.choice(len(y), size=int(rng.integers(1, 4)), replace=False)
        out.append(canvas(X[pick], y[pick], rng))
    return out


def config(root: Path) -> ProjectConfig:
    return ProjectConfig.model_validate(
        {
            "name": "digit-boxes",
            "labels": LABELS,
            "task": "boxes",
            "modality": "image",
            "input_field": "image",
            "media": {"roots": [str(root)], "features": "thumbnail", "size": 16},
            "model": {"kind": "external"},  # the detector runs here: see the module docstring
            "routing": {"audit_rate": 0.0, "bands": [{"min_confidence": 0.0, "tier": 1}]},
            "tiers": [
                {"tier": 1, "name": "bulk", "required_annotations": 2},
                {"tier": 2, "name": "expert", "required_annotations": 1},
            ],
            "consensus": {"method": "majority", "min_agreement": 0.5},
            "drift": {"check_on_ingest": False},
            "guidelines": "Draw a tight box around every handwritten digit and label it 0-9. The "
            "model's boxes are pre-filled: accept, move, resize, relabel or delete them.",
        }
    )


class BoxReviewer:
    """A simulated person: every box drawn up to 1 px off on each side; each true box missed or
    mislabelled with probability ``(1 - accuracy) / 2`` each."""

    def __init__(
        self, name: str, tiers: tuple[int, ...], accuracy: float, truth: dict[str, list[Box]], seed: int
    ):
        self.name, self.tiers, self.accuracy, self.truth = name, tiers, accuracy, truth
        self.rng = np.random.default_rng(seed)

    def review(self, assignment: Assignment) -> Answer:
        drawn = []
        step = (1.0 - self.accuracy) / 2
        for box in self.truth[assignment.item.external_id]:
            slip = self.rng.random()
            if slip < step:
                continue
            label = str((int(box.label) + 1) % 10) if slip < 2 * step else box.label
            x0, y0 = (max(0.0, v + float(self.rng.integers(-1, 2))) for v in (box.x, box.y))
            x1, y1 = (
                min(float(SIDE), v + float(self.rng.integers(-1, 2))) for v in (box.x + box.w, box.y + box.h)
            )
            drawn.append(Box(x0, y0, x1 - x0, y1 - y0, label))
        return canonical(drawn), False, None


def detector(seed: int) -> SlidingWindowDetector:
    return SlidingWindowDetector(
        windows=(DIGIT,), stride=2, cell=8, min_score=CANDIDATE_AT, random_state=seed
    )


def split(found: list[Box]) -> tuple[list[Box], float]:
    """The proposed boxes (score ≥ 0.5) among a canvas's candidates, and the canvas's confidence."""
    return [b for b in found if (b.score or 0.0) >= PROPOSE_AT], least_confident(
        [b.score or 0.0 for b in found]
    )


def run(out: Path, seed: int = 0, quick: bool = False, data_dir: Path | None = None) -> dict[str, Any]:
    """Write the canvases, run the loop round by round, write ``summary.json`` and ``report.html``
    (``data_dir`` is unused: the digits ship with scikit-learn; BLAS on one thread: the models are
    small, and threads only contend on a shared machine)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        result = _run(Path(out).resolve(), seed, quick)
    write(Path(out), result)
    return result


def _run(out: Path, seed: int, quick: bool) -> dict[str, Any]:
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    started, cpu = time.perf_counter(), time.process_time()
    digits = load_digits()
    pool, held_idx = train_test_split(
        np.arange(len(digits.target)), test_size=0.25, stratify=digits.target, random_state=seed
    )
    rng = np.random.default_rng([seed, 19])
    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    held = make_canvases(digits.data[held_idx], digits.target[held_idx], HELD_OUT, rng)
    stream = make_canvases(digits.data[pool], digits.target[pool], rounds * ROUND_SIZE, rng)
    root = out / "canvases"
    root.mkdir(parents=True, exist_ok=True)
    ext = [f"canvas-{i}" for i in range(len(stream))]
    for name, (image, _) in zip(ext, stream, strict=True):
        Image.fromarray(image, mode="L").save(root / f"{name}.png", format="PNG")
    truth = {e: boxes for e, (_, boxes) in zip(ext, stream, strict=True)}
    ws = connect(fresh_db(out))
    loop = ws.create_project(config(root))
    reviewers = [BoxReviewer(f"t1-{k}", (1,), 0.95, truth, seed * 100 + k) for k in range(4)]
    reviewers.append(BoxReviewer("expert", (2,), 0.99, truth, seed * 100 + 9))

    def payload(i: int, proposals: list[Box] | None) -> dict[str, Any]:
        body: dict[str, Any] = {"image": f"{ext[i]}.png"}  # relative to the media root
        if proposals is not None:
            body[PROPOSALS] = [
                {"x": b.x, "y": b.y, "w": b.w, "h": b.h, "label": b.label, "score": b.score}
                for b in proposals
            ]
        return body

    spec = Spec(
        inputs=[image for image, _ in stream],
        truth=[boxes for _, boxes in stream],
        external_ids=ext,
        score=lambda model, images: [split(f) for f in model.predict(images)],
        predict=lambda model, images: model.predict(images),
        payload=payload,
        correct=correct,
        decode=decode,
        fit=lambda images, boxes: detector(seed).fit(images, boxes),
        gate=lambda truth, new, old: box_gate(truth, new, old, LABELS, n_resamples=200, random_state=seed),
    )
    done = run_rounds(loop, reviewers, spec, rounds, ROUND_SIZE, rng, AUDIT_RATE, EPSILON, DELTA, MIN_TRAIN)
    champion = done.champion
    final = None
    if champion is not None:
        final = mean_average_precision(champion.predict([im for im, _ in held]), [b for _, b in held], LABELS)
    by_image: dict[str, dict[str, list[Box]]] = {}
    for item, annotator, label in all_annotations(loop):
        by_image.setdefault(item, {})[annotator] = decode(label)
    version = loop.snapshot()
    coco = loop.export_dataset(version.id, "coco", out)
    yolo = loop.export_dataset(version.id, "yolo", out)
    result = done.summary(
        "boxes",
        "held_out_map@0.5",
        final,
        held_out_size=len(held),
        seed=seed,
        quick=quick,
        epsilon=EPSILON,
        delta=DELTA,
        agreement=agreement_report(by_image),
        rules={
            "confidence": "candidates scored ≥ 0.2 are weighed, those ≥ 0.5 proposed; a canvas's "
            "confidence is min over candidates of max(s, 1 - s) (1.0 without any)",
            "error": "an accepted canvas is wrong unless its boxes match the truth one to one at "
            "IoU ≥ 0.5 with the same labels",
        },
        data="scikit-learn load_digits (UCI, CC BY 4.0): 1-3 real scans upsampled to 16x16 and pasted "
        "on 48x48 canvases with faint noise (seeded); the pasted squares and digits are the truth",
        exports=[str(coco), str(yolo)],
        database=str(out / "loopwright.db"),
        seconds=round(time.perf_counter() - started, 2),
        cpu_seconds=round(time.process_time() - cpu, 2),
    )
    ws.close()
    return result
