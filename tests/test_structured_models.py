"""The built-in span tagger and box detector learn from labels; the structured exports."""

import json

import numpy as np
import pytest
from sklearn.datasets import load_digits

from loopwright.consensus.spans import entity_f1
from loopwright.errors import Invalid
from loopwright.learning.detection import mean_average_precision
from loopwright.learning.detector import SlidingWindowDetector, nms
from loopwright.learning.tagger import SpanTagger
from loopwright.shapes import Box, Span
from loopwright.tasks import boxes as box_task
from loopwright.tasks import spans as span_task

NAMES = ["Alice", "Bob", "Carol", "Dmitri", "Eve", "Fatima", "George", "Hana", "Ines", "Jun"]
CITIES = ["Paris", "Lagos", "Oslo", "Lima", "Kyoto", "Quito", "Accra", "Hanoi"]


def _docs(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        name, city = rng.choice(NAMES), rng.choice(CITIES)
        text = f"{rng.choice(['Then', 'Later', 'Today'])} {name} flew to {city} with a friend."
        s, c = text.index(name), text.index(city)
        out.append((text, [Span(s, s + len(name), "PER"), Span(c, c + len(city), "LOC")]))
    return out


def test_tagger_learns_spans_and_scores_them():
    train, test = _docs(120, 0), _docs(40, 1)
    tagger = SpanTagger().fit([t for t, _ in train], [s for _, s in train])
    predicted = tagger.predict([t for t, _ in test])
    assert entity_f1(predicted, [s for _, s in test]) == 1.0
    assert all(0.5 < span.score <= 1.0 for doc in predicted for span in doc)
    assert tagger.predict(["nothing here"]) == [[]]


def test_tagger_needs_something_to_learn():
    with pytest.raises(Invalid, match="at least one span"):
        SpanTagger().fit(["no spans at all"], [[]])


def _canvases(n, seed):
    digits = load_digits()
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        canvas, boxes = np.zeros((48, 48)), []
        while len(boxes) < rng.integers(1, 4):
            i, (x, y) = rng.integers(len(digits.images)), rng.integers(0, 32, 2)
            if all(abs(x - b.x) >= 16 or abs(y - b.y) >= 16 for b in boxes):
                canvas[y : y + 16, x : x + 16] = np.kron(digits.images[i], np.ones((2, 2)))
                boxes.append(Box(float(x), float(y), 16.0, 16.0, str(digits.target[i])))
        out.append((canvas, boxes))
    return out


@pytest.mark.slow
def test_detector_learns_boxes_from_labels():
    train, test = _canvases(100, 0), _canvases(30, 1)
    detector = SlidingWindowDetector().fit([c for c, _ in train], [b for _, b in train])
    found = detector.predict([c for c, _ in test])
    labels = [str(k) for k in range(10)]
    score = mean_average_precision(found, [b for _, b in test], labels)
    assert score > 0.8  # a sliding-window LR on pixels: 0.897 on these seeds
    untrained = SlidingWindowDetector().fit([c for c, _ in train[:5]], [b for _, b in train[:5]])
    assert (
        mean_average_precision(untrained.predict([c for c, _ in test]), [b for _, b in test], labels) < score
    )
    assert detector.predict([np.zeros((8, 8))]) == [[]]  # smaller than a window


def test_nms_keeps_the_most_confident_of_overlapping_boxes():
    boxes = [Box(0, 0, 10, 10, "a", 0.6), Box(1, 0, 10, 10, "a", 0.9), Box(30, 30, 10, 10, "b", 0.5)]
    assert nms(boxes, 0.3) == [boxes[1], boxes[2]]


def test_box_exports():
    b = [Box(10, 20, 30, 40, "cat"), Box(0, 0, 5, 5, "dog")]
    assert box_task.decode(box_task.canonical(b)) == sorted(b, key=lambda x: (x.y, x.x))
    coco = box_task.to_coco([{"file_name": "a.png", "width": 100, "height": 200, "boxes": b}], ["cat", "dog"])
    assert coco["categories"] == [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    assert coco["annotations"][0] == {
        "id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 20, 30, 40], "area": 1200, "iscrowd": 0,
    }  # fmt: skip
    assert box_task.to_yolo(b, 100, 200, ["cat", "dog"]) == (
        "0 0.250000 0.200000 0.300000 0.200000\n1 0.025000 0.012500 0.050000 0.025000\n"
    )


def test_span_exports():
    text = "Alice met Bob."
    spans = [Span(10, 13, "PER"), Span(0, 5, "PER")]
    assert span_task.canonical(spans) == (
        '[{"start":0,"end":5,"label":"PER"},{"start":10,"end":13,"label":"PER"}]'
    )
    assert span_task.decode(span_task.canonical(spans)) == sorted(spans)
    row = json.loads(span_task.to_jsonl_row("d1", text, spans))
    assert row["spans"][1] == {"start": 10, "end": 13, "label": "PER", "text": "Bob"}
    assert span_task.to_conll(text, spans) == "Alice\tB-PER\nmet\tO\nBob\tB-PER\n.\tO\n\n"
