"""The ``images`` scenario: scikit-learn's digits as real PNG files, reviewed by reference.

Each of the 1,797 digits of ``load_digits`` (real 8x8 scans, BSD-licensed with scikit-learn) is
upsampled to 32x32 and written as a PNG under ``out/images`` — dark ink on light paper, every
other one as RGB in blue ink on cream, the rest greyscale — plus seeded augmented copies
(small rotations, scalings, shifts and noise; marked ``synthetic`` with their source). Items
reference the files relative to the project's media root, that directory
(``{"image": "digit-17.png"}``), and the built-in model reads each file's 16x16 greyscale
thumbnail. Simulated reviewers work through the same claim/submit use cases the API calls; a
quarter of the digits is held out and only scores the champion at the end.
"""

from __future__ import annotations

import time
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from loopwright.domain import Route
from loopwright.learning.augment import apply_transform, draw_transform
from loopwright.scenarios import fresh_db, summary, write

NAME = "images"
ROUND_SIZE = 200
QUICK_ITEMS, FULL_ITEMS = 1_600, 8_000
SIDE = 32  # pixels of each rendered PNG
GOLD_ITEMS = 40
INK = {"L": (0, 0, 0), "RGB": (20, 40, 140)}  # dark grey / blue ink
PAPER = {"L": (245, 245, 245), "RGB": (250, 240, 215)}  # light grey / cream paper


def render(pixels: np.ndarray, path: Path, mode: str) -> None:
    """One digit (8x8, 0..16 ink) as a ``SIDE`` x ``SIDE`` PNG in greyscale or RGB."""
    from PIL import Image

    ink = np.clip(np.asarray(pixels, dtype=np.float64).reshape(8, 8) / 16.0, 0.0, 1.0)
    big = np.asarray(
        Image.fromarray(ink.astype(np.float32), mode="F").resize((SIDE, SIDE), Image.Resampling.BILINEAR)
    )
    big = np.clip(big, 0.0, 1.0)[..., None]
    colour = np.asarray(PAPER[mode]) * (1.0 - big) + np.asarray(INK[mode]) * big
    image = np.round(colour).astype(np.uint8)
    Image.fromarray(image[..., 0] if mode == "L" else image, mode=mode).save(path, format="PNG")


QUICK_CERTIFY = {"epsilon": 0.05, "delta": 0.1, "min_evidence": None}


def project_config(root: Path, quick: bool = False) -> dict[str, Any]:
    """The shipped digits project, reading PNG files under ``root`` instead of pixel lists.

    ``quick`` (1,600 items, some 300 audited) certifies ε = 0.05 at δ = 0.1 instead of the
    project's 0.02 at 0.05: that needs at least 149 error-free audited items above the threshold
    (313 with the expert's slips allowed for), more than a quick run audits above any useful
    threshold, so it would certify nothing.
    """
    config = yaml.safe_load((files("loopwright") / "examples" / "digits.yaml").read_text(encoding="utf-8"))
    if quick:
        config["routing"]["certify"] = QUICK_CERTIFY
    config.update(
        name="images",
        input_field="image",
        media={"roots": [str(root)], "features": "thumbnail", "size": 16},
        drift={**config["drift"], "check_on_ingest": False},  # one steady world: digits covers drift
        # one answer per item: majority takes it (gold checks pause a careless person); the
        # digits demo's Dawid-Skene refit on every submit would cost most of the time budget
        consensus={"method": "majority"},
        guidelines="# Labelling handwritten digits\nEach item is a scanned digit as an image file; zoom "
        "with + and -.\n- 0-9 chooses a label; u marks it unsure; s skips it.",
    )
    return dict(config)


def run(out: Path, seed: int = 0, quick: bool = False, data_dir: Path | None = None) -> dict[str, Any]:
    """Write the PNGs, run the loop round by round, write ``summary.json`` and ``report.html``
    (``data_dir`` is unused: the digits ship with scikit-learn)."""
    result = _run(Path(out).resolve(), seed, quick)
    write(Path(out), result)
    return result


def _run(out: Path, seed: int, quick: bool) -> dict[str, Any]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from loopwright.api import connect
    from loopwright.simulate import SimulatedAnnotator, team, work

    started = time.perf_counter()
    db_url = fresh_db(out)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    digits = load_digits()
    X, y = digits.data, digits.target.astype(str)
    pool, held_out = train_test_split(np.arange(len(y)), test_size=0.25, stratify=y, random_state=seed)
    shuffled = np.random.default_rng(seed).permutation(pool)
    gold_ids, originals = shuffled[:GOLD_ITEMS], shuffled[GOLD_ITEMS:]
    rng = np.random.default_rng([seed, 18])
    modes = {}

    def write(name: str, pixels: np.ndarray, index: int) -> str:
        path = images / f"{name}.png"
        modes[name] = "RGB" if index % 2 else "L"
        render(pixels, path, modes[name])
        return path.name  # relative to the media root: the same items, hashes and draws in any --out

    refs = {f"digit-{i}": write(f"digit-{i}", X[i], int(i)) for i in range(len(y))}
    truth = {f"digit-{i}": y[i] for i in range(len(y))}
    total = QUICK_ITEMS if quick else FULL_ITEMS
    stream = [f"digit-{i}" for i in originals[:total]]
    for k, i in enumerate(rng.choice(originals, size=max(0, total - len(stream)))):
        name = f"digit-{i}-aug{k}"
        refs[name] = write(name, apply_transform(X[i], draw_transform(rng, 1.0)), int(i) + k)
        truth[name] = y[i]
        stream.append(name)
    stream = [stream[j] for j in rng.permutation(len(stream))]

    ws = connect(db_url)
    loop = ws.create_project(project_config(images, quick))
    loop.add_gold(
        {"external_id": f"digit-{i}", "payload": {"image": refs[f"digit-{i}"]}, "label": y[i]}
        for i in gold_ids
    )
    people = team(loop.config.labels, {1: 4, 2: 2, 3: 3}, {1: 0.95, 2: 0.97, 3: 0.995}, random_state=seed)
    people.append(SimulatedAnnotator("t1-sloppy", (1,), 0.5, loop.config.labels, seed + 99))
    held = [{"image": refs[f"digit-{i}"]} for i in held_out]
    human = gold_answers = auto_total = auto_wrong = 0
    history: list[dict[str, Any]] = []
    for r in range(0, len(stream), ROUND_SIZE):
        batch = stream[r : r + ROUND_SIZE]
        report = loop.ingest(
            {
                "external_id": name,
                "payload": {"image": refs[name]},
                "metadata": {"synthetic": True, "source": name.split("-aug")[0]} if "-aug" in name else {},
            }
            for name in batch
        )
        auto = [o for o in report.outcomes if o.route is Route.AUTO_ACCEPT]
        wrong = sum(o.label != truth[o.external_id] for o in auto)
        auto_total, auto_wrong = auto_total + len(auto), auto_wrong + wrong
        labelled = work(loop, people, truth.__getitem__)
        human += labelled.annotations
        gold_answers += labelled.gold_answers
        outcome = loop.maybe_retrain()
        history.append(
            {
                "round": len(history),
                "items": len(batch),
                "auto_accepted": len(auto),
                "auto_accept_errors": wrong,
                "human_labels": labelled.annotations,
                "retrained": outcome is not None,
                "promoted": bool(outcome and outcome.promoted),
            }
        )
    accuracy = None
    if loop.status().champion is not None:
        accuracy = float(np.mean(loop.predict(held).argmax(axis=1).astype(str) == y[held_out]))
    certify = loop.config.routing.certify
    result = summary(
        NAME,
        len(stream),
        human,
        auto_total,
        auto_wrong,
        "held_out_accuracy",
        accuracy,
        seed=seed,
        quick=quick,
        data="scikit-learn load_digits (1,797 real 8x8 scans, BSD-3-Clause), upsampled to "
        f"{SIDE}x{SIDE} PNG files (half greyscale, half RGB) plus seeded augmented copies",
        synthetic_items=sum("-aug" in name for name in stream),
        image_files=len(refs),
        rgb_files=sum(m == "RGB" for m in modes.values()),
        gold_answers=gold_answers,
        epsilon=None if certify is None else certify.epsilon,
        certified_threshold=None if (cert := loop.status().certification) is None else cert.threshold,
        held_out_size=len(held_out),
        promotions=sum(m.promoted_at is not None for m in loop.models()),
        history=history,
        database=str(out / "loopwright.db"),
        seconds=round(time.perf_counter() - started, 2),
    )
    ws.close()
    return result
