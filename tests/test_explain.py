"""Explanations on tiny seeded models: linear contributions and occlusion, checked exactly."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from loopwright.config import ProjectConfig
from loopwright.learning.estimators import default_estimator
from loopwright.learning.explain import explain

TABULAR = ProjectConfig.from_dict({"name": "t", "labels": ["a", "b", "c"], "features": ["x", "y", "z"]})
IMAGE = ProjectConfig.from_dict({"name": "i", "labels": ["0", "1"], "modality": "image"})
TEXT = ProjectConfig.from_dict({"name": "s", "labels": ["ham", "spam"], "modality": "text"})


def _tabular_model() -> Any:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = np.array(["a", "b", "c"])[np.argmax(X, axis=1)]
    return default_estimator(TABULAR, seed=0).fit(X, y)


def test_linear_tabular_contributions_are_coef_times_scaled_input() -> None:
    model = _tabular_model()
    payload = {"x": 0.2, "y": 1.5, "z": -0.4}
    got = explain(model, TABULAR, payload, k=3)
    x = np.array([[0.2, 1.5, -0.4]])
    scaler, clf = model[0], model[-1]
    c = int(model.predict_proba(x)[0].argmax())
    expected = clf.coef_[c] * scaler.transform(x)[0]
    assert got.label == "b" and got.method == "linear" and got.heat is None
    assert got.confidence == pytest.approx(model.predict_proba(x)[0, c])
    order = np.argsort(-np.abs(expected))
    assert [w.feature for w in got.top] == [["x", "y", "z"][j] for j in order]
    assert [w.index for w in got.top] == order.tolist()
    assert [w.weight for w in got.top] == pytest.approx(expected[order].tolist())
    # contributions plus the intercept are exactly the class's logit
    logit = clf.decision_function(scaler.transform(x))[0, c]
    assert sum(w.weight for w in got.top) + clf.intercept_[c] == pytest.approx(logit)
    assert len(explain(model, TABULAR, payload, k=1).top) == 1


def test_linear_image_has_pixel_names_and_a_full_heat_map() -> None:
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 16, size=(40, 16))
    y = np.where(X[:, 5] > 8, "1", "0")
    # a linear model (the image default is an RBF SVM, explained by occlusion)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=0)).fit(X, y)
    pixels = X[0].tolist()
    got = explain(model, IMAGE, {"pixels": pixels}, k=4)
    c = list(model.classes_).index(got.label)
    coef = model[-1].coef_[0] * (1 if c == 1 else -1)  # binary: one row, favouring class "1"
    expected = coef * model[0].transform(X[:1])[0]
    assert got.heat == pytest.approx(expected.tolist())
    order = np.argsort(-np.abs(expected))[:4]
    assert [w.index for w in got.top] == order.tolist()
    assert [w.feature for w in got.top] == [f"pixel ({j // 4}, {j % 4})" for j in order]


def test_linear_text_weights_and_token_spans() -> None:
    texts = ["win free money now", "free prize win", "lunch at noon", "see you at lunch", "win now"]
    labels = ["spam", "spam", "ham", "ham", "spam"]
    model = default_estimator(TEXT, seed=0).fit(texts, labels)
    text = "Free lunch? WIN free money"
    got = explain(model, TEXT, {"text": text}, k=20)
    xt = model[0].transform([text])
    names = model[0].get_feature_names_out().tolist()
    c = list(model.classes_).index(got.label)
    sign = 1 if c == 1 else -1
    expected = {names[j]: sign * model[-1].coef_[0, j] * v for j, v in zip(xt.indices, xt.data, strict=True)}
    assert got.label == "spam" and got.method == "linear"
    assert {w.feature: w.weight for w in got.top} == pytest.approx(expected)
    by = {w.feature: w for w in got.top}
    assert by["free"].spans == ((0, 4), (16, 20))
    assert by["win free"].spans == ((12, 20),)
    for w in got.top:
        assert all(text[s:e].lower() == w.feature for s, e in w.spans)


class Additive:
    """p(yes) = 0.1 + 0.2 x0 + 0.1 x1 (x in [0, 1]): occlusion by 0 removes exactly a term."""

    classes_ = np.array(["no", "yes"])

    def predict_proba(self, X: Any) -> Any:
        X = np.asarray(X, dtype=np.float64)
        s = 0.1 + 0.2 * X[:, 0] + 0.1 * X[:, 1]
        return np.column_stack([1 - s, s])


class Words:
    """p(spam) = 0.3 + 0.4 if "free" occurs + 0.1 per "win"."""

    classes_ = np.array(["ham", "spam"])

    def predict_proba(self, X: Any) -> Any:
        s = np.array(
            [0.3 + 0.4 * ("free" in t.lower().split()) + 0.1 * t.lower().split().count("win") for t in X]
        )
        return np.column_stack([1 - s, s])


def test_occlusion_for_non_linear_tabular_and_text() -> None:
    config = ProjectConfig.from_dict({"name": "o", "labels": ["no", "yes"], "features": ["u", "v"]})
    got = explain(Additive(), config, {"u": 1.0, "v": 0.5}, k=5)
    assert got.method == "occlusion" and got.label == "no" and got.confidence == pytest.approx(0.65)
    # for "no", dropping u raises p(no) by 0.2: a push away from "no"
    assert [(w.feature, w.index) for w in got.top] == [("u", 0), ("v", 1)]
    assert [w.weight for w in got.top] == pytest.approx([-0.2, -0.05])
    text = "win FREE stuff win"
    got = explain(Words(), TEXT, {"text": text}, k=5)
    assert got.label == "spam" and got.confidence == pytest.approx(0.9)
    assert [(w.feature, w.spans) for w in got.top] == [("free", ((4, 8),)), ("win", ((0, 3), (15, 18)))]
    assert [w.weight for w in got.top] == pytest.approx([0.4, 0.2])
