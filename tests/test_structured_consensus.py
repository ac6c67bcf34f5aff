"""Boxes and spans from several annotators: hand-worked consensus, agreement and metrics."""

import json

import pytest

from loopwright.consensus.boxes import agreement_report, fuse, pair_agreement
from loopwright.consensus.spans import agreement_report as span_agreement
from loopwright.consensus.spans import consensus, entity_f1, token_answers, vote_by_offsets
from loopwright.errors import Invalid
from loopwright.learning.bootstrap import paired_bootstrap
from loopwright.learning.detection import average_precision, mean_average_precision
from loopwright.shapes import Box, Span, bio_tags, iou_matrix, parse_box, parse_spans, spans_from_tags, tokens

CAR, PERSON = "car", "person"
# Three annotators on one image: all find the car; b draws the person 3 px to the right;
# c misses the person and adds a stray box nobody else sees.
A = [Box(10, 10, 20, 20, CAR), Box(50, 50, 30, 30, PERSON)]
B = [Box(10, 10, 20, 20, CAR), Box(53, 50, 30, 30, PERSON)]
C = [Box(10, 10, 20, 20, CAR), Box(80, 5, 10, 10, CAR)]


def test_iou_of_a_shifted_box():
    # overlap 27 x 30 = 810 over 900 + 900 - 810
    assert iou_matrix([A[1]], [B[1]])[0, 0] == pytest.approx(810 / 990)
    assert iou_matrix([A[0]], [C[1]])[0, 0] == 0.0


def test_fusion_of_three_annotators_with_a_missing_and_a_shifted_box():
    fused = fuse({"a": A, "b": B, "c": C})
    assert [(f.box.label, f.annotators, round(f.support, 4), f.confirmed) for f in fused] == [
        (CAR, ("c",), 0.3333, False),  # the stray: found by too few
        (CAR, ("a", "b", "c"), 1.0, True),
        (PERSON, ("a", "b"), 0.6667, True),
    ]
    person = fused[2].box
    assert (person.x, person.y, person.w, person.h) == (51.5, 50.0, 30.0, 30.0)


def test_fusion_weights_corners_and_labels_by_skill():
    relabel = [Box(10, 10, 20, 20, PERSON), Box(53, 50, 30, 30, PERSON)]
    fused = fuse({"a": A, "b": relabel, "c": C}, skills={"a": 0.9, "b": 0.6, "c": 0.9})
    by_label = {f.annotators: f for f in fused}
    assert by_label[("a", "b", "c")].box.label == CAR  # 1.8 for car against 0.6 for person
    assert by_label[("a", "b", "c")].label_votes == {CAR: pytest.approx(1.8), PERSON: pytest.approx(0.6)}
    person = by_label[("a", "b")]
    assert person.box.x == pytest.approx((0.9 * 50 + 0.6 * 53) / 1.5)
    assert person.support == pytest.approx(1.5 / 2.4)


def test_box_agreement_per_pair():
    assert pair_agreement(A, B) == {"mean_iou": pytest.approx((1 + 810 / 990) / 2), "matched_f1": 1.0}
    report = agreement_report({"img-1": {"a": A, "b": B, "c": C}})
    assert [(r["annotators"], r["mean_iou"], r["matched_f1"]) for r in report] == [
        (["a", "b"], round((1 + 810 / 990) / 2, 4), 1.0),
        (["a", "c"], 1.0, 0.5),
        (["b", "c"], 1.0, 0.5),
    ]


def test_average_precision_hand_worked():
    truths = [[Box(0, 0, 10, 10, CAR)], [Box(0, 0, 10, 10, CAR)]]
    detections = [
        [Box(0, 0, 10, 10, CAR, 0.9), Box(50, 50, 10, 10, CAR, 0.8)],  # a hit, then a false alarm
        [Box(1, 0, 10, 10, CAR, 0.7)],  # IoU 90/110: a hit
    ]
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1: area 0.5 * 1 + 0.5 * 2/3
    assert average_precision(detections, truths, CAR) == pytest.approx(0.5 + 1 / 3)
    assert average_precision(detections, truths, CAR, iou_threshold=0.9) == pytest.approx(0.5 * 1)
    assert average_precision(detections, truths, PERSON) is None
    assert mean_average_precision(detections, truths, [CAR, PERSON]) == pytest.approx(0.5 + 1 / 3)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"x": 90, "y": 0, "w": 20, "h": 10, "label": CAR}, "outside the 100x80 image"),
        ({"x": 1, "y": 1, "w": 0, "h": 10, "label": CAR}, "zero or negative area"),
        ({"x": 1, "y": 1, "w": 5, "h": 5, "label": "bus"}, "box.label: 'bus' is not one of"),
        ({"x": "a", "y": 1, "w": 5, "h": 5, "label": CAR}, "needs numbers x, y, w, h"),
    ],
)
def test_bad_boxes_are_refused_naming_the_field(raw, message):
    with pytest.raises(Invalid, match=message):
        parse_box(raw, [CAR, PERSON], size=(100, 80))


TEXT = "Alice met Bob in Paris."
SA = [Span(0, 5, "PER"), Span(10, 13, "PER"), Span(17, 22, "LOC")]
SB = [Span(0, 5, "PER"), Span(17, 22, "LOC")]  # misses Bob
SC = [Span(0, 9, "PER"), Span(10, 13, "PER"), Span(17, 23, "LOC")]  # two spans run too far


def test_tokens_and_tags():
    assert tokens(TEXT) == [(0, 5), (6, 9), (10, 13), (14, 16), (17, 22), (22, 23)]
    assert bio_tags(TEXT, SC) == ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "I-LOC"]
    assert spans_from_tags(TEXT, ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "I-LOC"]) == SC


def test_span_consensus_by_token_vote():
    assert consensus(TEXT, {"a": SA, "b": SB, "c": SC}) == SA
    # c alone outweighs a and b: its long spans win
    assert consensus(TEXT, {"a": SA, "b": SB, "c": SC}, skills={"a": 0.2, "b": 0.2, "c": 1.0}) == SC


def test_span_agreement_against_a_hand_computation():
    report = span_agreement({"d1": (TEXT, {"a": SA, "b": SB, "c": SC})})
    assert report["pairs"] == [
        {"annotators": ["a", "b"], "documents": 1, "span_f1": 0.8},
        {"annotators": ["a", "c"], "documents": 1, "span_f1": 0.3333},
        {"annotators": ["b", "c"], "documents": 1, "span_f1": 0.0},
    ]
    # nominal alpha by hand: 18 pairable values, 6 disagreeing coincidences, marginals 5, 8, 1, 3, 1
    assert report["token_alpha"] == round(1 - 17 * 6 / (18**2 - (25 + 64 + 1 + 9 + 1)), 4)


def test_token_answers_feed_dawid_skene():
    from loopwright.consensus.dawid_skene import DawidSkene

    items, workers, labels = token_answers({"d1": (TEXT, {"a": SA, "b": SB, "c": SC})})
    assert len(items) == 3 * 6 and items[:2] == ["d1#0", "d1#1"]
    ds = DawidSkene().fit(items, workers, labels)
    tags = [ds.labels_[list(ds.items_).index(f"d1#{i}")] for i in range(6)]
    assert spans_from_tags(TEXT, tags) == SA


def test_entity_f1():
    assert entity_f1([SA, []], [SB, []]) == pytest.approx(2 * 2 / 5)
    assert entity_f1([[]], [[]]) == 1.0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([{"start": 20, "end": 30, "label": "LOC"}], r"spans\[0\]: \[20, 30\) lies outside the text"),
        ([{"start": 3, "end": 3, "label": "LOC"}], "is empty"),
        ({"start": 3}, "must be a list"),
        ([{"start": 0, "end": 5, "label": "ORG"}], r"spans\[0\].label: 'ORG' is not one of"),
        ([{"start": 0, "end": 9, "label": "PER"}, {"start": 6, "end": 13, "label": "PER"}], "overlap"),
    ],
)
def test_bad_spans_are_refused_naming_the_field(raw, message):
    with pytest.raises(Invalid, match=message):
        parse_spans(raw, ["PER", "LOC"], TEXT)


def test_overlap_allowed_when_the_task_says_so():
    raw = [{"start": 0, "end": 9, "label": "PER"}, {"start": 6, "end": 13, "label": "PER"}]
    assert parse_spans(raw, ["PER"], TEXT, allow_overlap=True) == [Span(0, 9, "PER"), Span(6, 13, "PER")]


def test_paired_bootstrap_tells_worse_from_equal():
    champion = [1.0] * 40
    worse = [1.0] * 30 + [0.0] * 10
    same = [1.0] * 40

    def mean_of(b):
        return lambda idx: (sum(champion[i] for i in idx) / len(idx), sum(b[i] for i in idx) / len(idx))

    verdict = paired_bootstrap(40, mean_of(worse), random_state=1)
    assert verdict.difference == -0.25 and verdict.p_worse < 0.01
    assert verdict.interval[1] < 0
    assert paired_bootstrap(40, mean_of(same), random_state=1).p_worse > 0.4


def test_span_vote_on_offsets_equals_the_token_vote():
    spans, agreement, tie = vote_by_offsets([SA, SB, SC])
    assert spans == consensus(TEXT, {"a": SA, "b": SB, "c": SC}) == SA
    # segments inside someone's span: [0,5) 3/3, [5,9) 2/3, [10,13) 2/3, [17,22) 3/3, [22,23) 2/3
    assert agreement == pytest.approx((5 * 1 + 4 * 2 / 3 + 3 * 2 / 3 + 5 * 1 + 1 * 2 / 3) / 18)
    assert not tie
    assert vote_by_offsets([[Span(0, 5, "PER")], []])[1:] == (0.5, True)
    assert vote_by_offsets([[], []]) == ([], 1.0, False)


def test_span_and_box_task_types_parse_and_vote():
    from loopwright import tasks

    spans = tasks.task_type("spans")
    stored = spans.parse(
        '[{"start": 10, "end": 13, "label": "PER"}, {"start": 0, "end": 5, "label": "PER"}]', ["PER"]
    )
    assert stored == '[{"start":0,"end":5,"label":"PER"},{"start":10,"end":13,"label":"PER"}]'
    vote = spans.vote([stored, stored, '[{"start":0,"end":5,"label":"PER"}]'], ["PER"])
    assert (vote.label, round(vote.agreement, 4), vote.tie) == (
        '[{"start":0,"end":5,"label":"PER"},{"start":10,"end":13,"label":"PER"}]',
        0.875,  # (5 characters x 3/3 + 3 x 2/3) / 8
        False,
    )
    with pytest.raises(Invalid, match=r"label\[0\].label: 'ORG' is not one of"):
        spans.parse([{"start": 0, "end": 3, "label": "ORG"}], ["PER"])
    with pytest.raises(Invalid, match="must be a JSON array"):
        spans.parse("PER", ["PER"])

    boxes = tasks.task_type("boxes")
    answers = [
        boxes.parse([{"x": b.x, "y": b.y, "w": b.w, "h": b.h, "label": b.label} for b in ann], [CAR, PERSON])
        for ann in (A, B, C)
    ]
    vote = boxes.vote(answers, [CAR, PERSON])
    assert json.loads(vote.label) == [  # the stray (1 of 3) is dropped, the person fused
        {"x": 10.0, "y": 10.0, "w": 20.0, "h": 20.0, "label": CAR},
        {"x": 51.5, "y": 50.0, "w": 30.0, "h": 30.0, "label": PERSON},
    ]
    assert (round(vote.agreement, 4), vote.tie) == (round((1 / 3 + 1 + 2 / 3) / 3, 4), False)
    assert boxes.export_row(vote.label, [CAR, PERSON])["boxes"][1]["label"] == PERSON
    with pytest.raises(Invalid, match=r"label\[0\]: zero or negative area"):
        boxes.parse([{"x": 1, "y": 1, "w": 0, "h": 3, "label": CAR}], [CAR])
