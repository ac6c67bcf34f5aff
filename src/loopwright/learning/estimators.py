"""The model protocol, default pipelines per modality, and featurising item payloads."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from loopwright.config import Modality, ProjectConfig
from loopwright.errors import Invalid

if TYPE_CHECKING:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.svm import SVC


@runtime_checkable
class ProbabilisticModel(Protocol):
    """Anything scikit-learn-like: ``classes_`` and ``predict_proba`` (columns follow ``classes_``)."""

    classes_: Any

    def predict_proba(self, X: Any) -> Any: ...


class CallableModel:
    """Wrap a plain function ``f(X) -> probabilities`` whose columns follow ``labels``."""

    def __init__(self, fn: Callable[[Any], Any], labels: Sequence[str]) -> None:
        self.fn = fn
        self.classes_ = np.asarray(list(labels))

    def predict_proba(self, X: Any) -> Any:
        return self.fn(X)


def as_model(obj: Any, labels: Sequence[str]) -> ProbabilisticModel:
    """Accept an estimator with ``predict_proba`` and ``classes_``, or a callable."""
    if isinstance(obj, ProbabilisticModel):
        return obj
    if callable(obj):
        return CallableModel(obj, labels)
    raise Invalid(
        f"{type(obj).__name__} is not a model: give an estimator with predict_proba and classes_, "
        "or a function returning one probability row per input"
    )


IMAGE_C = 3.0  # the image SVM's C (scikit-learn's default is 1): see default_estimator


def default_estimator(config: ProjectConfig, seed: int) -> Pipeline | SVC:
    """StandardScaler + LogisticRegression for tabular; an RBF SVM with Platt-calibrated
    probabilities for images; TF-IDF + LogisticRegression for text.

    Images default to the SVM because certification needs confident predictions that are rarely
    wrong: on the 450 held-out digits with 1,300 labels it reached 0.991 accuracy and 0 errors
    among the 84 % it gave ≥ 0.9 (logistic regression: 0.967, 0.18 % errors among 81 %), fitting
    in 0.3 s. Its C is 3, not scikit-learn's 1: as rarely wrong when confident, but more accurate
    with few labels (0.967 against 0.956 with 300), which active learning and the first
    certificates feed on (``bench/results/default_model.md``, ``active_learning.md``).

    Text defaults to weak regularisation and balanced class weights: TF-IDF values are small and
    text labels are often imbalanced (measured on the SMS spam and TREC sets with 300 labels:
    accuracy 0.872 → 0.956 and 0.648 → 0.70 against ``C=1``). ``model.params`` overrides the
    final estimator's parameters in every case.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if config.task == "multilabel":
        return _one_vs_rest(config, seed)
    if config.modality is Modality.IMAGE:
        return _image_svm(config, seed)
    if config.modality is Modality.TEXT:
        return make_pipeline(TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2)), _logistic(config, seed))
    return make_pipeline(StandardScaler(), _logistic(config, seed))


def _image_svm(config: ProjectConfig, seed: int) -> SVC:
    """The images' classifier: an RBF SVM (C = ``IMAGE_C``) with Platt probabilities, or its
    pairwise decision values while labels are too few for Platt (:class:`ImageSVC`)."""
    # probability=True: libsvm's 5-fold Platt scaling of each pair of classes, coupled. It is
    # deprecated in scikit-learn 1.9 (removed in 1.11: pinned below it) for
    # CalibratedClassifierCV(SVC(), ensemble=False), which calibrates one-vs-rest scores and
    # ranks worse: about 1 % errors among its predictions ≥ 0.9 where this has none, so it
    # certifies next to nothing (bench/results/guarantee_calibrated.md).
    from loopwright.learning.svm import ImageSVC  # on use: keeps start-up light

    return ImageSVC(**{"C": IMAGE_C, "probability": True, "random_state": seed, **config.model.params})


def _logistic(config: ProjectConfig, seed: int) -> LogisticRegression:
    """Text's and tables' classifier: weakly regularised and class-balanced for text."""
    from sklearn.linear_model import LogisticRegression

    text = config.modality is Modality.TEXT
    defaults: dict[str, Any] = {"C": 10.0, "class_weight": "balanced"} if text else {"C": 1.0}
    return LogisticRegression(random_state=seed, **{"max_iter": 2000, **defaults, **config.model.params})


def _one_vs_rest(config: ProjectConfig, seed: int) -> Pipeline:
    """``task: multilabel``: one binary model per label (columns in the project's label order), fit
    on a multi-hot matrix. Each is the modality's single-label classifier (Platt-calibrated RBF
    SVM for images, logistic regression otherwise), so every column is a calibrated probability
    that its label applies; the text vectoriser is fit once for all labels."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if config.modality is Modality.IMAGE:
        return make_pipeline(StandardScaler(), OneVsRestClassifier(_image_svm(config, seed)))
    text = config.modality is Modality.TEXT
    first = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2)) if text else StandardScaler()
    return make_pipeline(first, OneVsRestClassifier(_logistic(config, seed)))


def is_multilabel(model: Any) -> bool:
    """Whether ``model`` (or a pipeline's last step) was fit on a multi-hot matrix: its
    ``predict_proba`` columns are per-label probabilities, not one distribution."""
    last = getattr(model, "_final_estimator", model)
    try:
        return bool(getattr(last, "multilabel_", False))
    except Exception:  # an unfitted scikit-learn estimator raises on the property
        return False


def featurize(config: ProjectConfig, payloads: Sequence[dict[str, Any]]) -> Any:
    """Turn item payloads into model input: a float matrix, or a list of strings for text."""
    key = config.input_key
    if config.modality is Modality.TEXT:
        return [str(p[key]) for p in payloads]
    if config.modality is Modality.IMAGE:
        if payloads and all(isinstance(p[key], str) for p in payloads):  # images by reference
            from loopwright.learning.image_features import featurize as image_rows

            return image_rows([p[key] for p in payloads], config.media)
        return np.asarray([np.asarray(p[key], dtype=np.float64).ravel() for p in payloads])
    fields = config.features
    if fields is None:
        return np.asarray([np.asarray(p[key], dtype=np.float64) for p in payloads])
    return np.asarray([[float(p[f]) for f in fields] for p in payloads], dtype=np.float64)


def check_payload(config: ProjectConfig, payload: Any) -> str | None:
    """Why ``payload`` cannot be featurised, or ``None`` when it can."""
    if not isinstance(payload, dict):
        return f"payload must be an object, not {type(payload).__name__}"
    if config.modality is Modality.TABULAR and config.features is not None:
        missing = [f for f in config.features if f not in payload]
        if missing:
            return f"payload lacks feature field(s) {missing}"
        bad = [f for f in config.features if not _is_number(payload[f])]
        return f"feature field(s) {bad} are not numbers" if bad else None
    key = config.input_key
    if key not in payload:
        return f"payload lacks the field {key!r}"
    if config.modality is Modality.TEXT:
        return None if isinstance(payload[key], str) else f"field {key!r} must be a string"
    if config.modality is Modality.IMAGE and isinstance(payload[key], str):
        return None  # an image reference: loop.media reads and checks it
    try:
        values = np.asarray(payload[key], dtype=np.float64)
    except (TypeError, ValueError, OverflowError):  # overflow: an integer beyond the float range
        return f"field {key!r} must be numbers"
    return None if np.isfinite(values).all() and values.size else f"field {key!r} must be finite numbers"


def _is_number(value: Any) -> bool:
    """A finite int or float a model can take (a 4,000-digit integer is no float)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def predict_proba_by_label(model: ProbabilisticModel, X: Any, labels: Sequence[str]) -> NDArray[np.float64]:
    """Probabilities with columns in ``labels`` order, validated; raises ``Invalid`` if unusable.

    Columns are matched through ``model.classes_`` (never by position); labels the model does
    not know get probability 0. A multi-label model (:func:`is_multilabel`) gives per-label
    probabilities instead, one column per label in ``labels`` order, each in [0, 1]. Any
    exception from the model propagates to the caller.
    """
    proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    n = len(X)
    if is_multilabel(model):
        return _per_label(proba, n, labels)
    classes = [str(c) for c in np.asarray(model.classes_).tolist()]
    if proba.shape != (n, len(classes)):
        raise Invalid(f"model returned probabilities of shape {proba.shape}, expected {(n, len(classes))}")
    if unknown := sorted(set(classes) - set(labels)):
        raise Invalid(f"model predicts classes outside the project's labels: {unknown}")
    if not np.isfinite(proba).all():
        raise Invalid("model returned NaN or infinite probabilities")
    if n and not np.allclose(proba.sum(axis=1), 1.0, atol=1e-6):
        raise Invalid("model probabilities do not sum to 1 per row")
    out = np.zeros((n, len(labels)))
    position = {label: j for j, label in enumerate(labels)}
    for i, c in enumerate(classes):
        out[:, position[c]] = proba[:, i]
    return out


def _per_label(proba: NDArray[np.float64], n: int, labels: Sequence[str]) -> NDArray[np.float64]:
    """A multi-label model's per-label probabilities, validated: one column per project label,
    in the project's label order (the order its multi-hot training matrix had)."""
    if proba.shape != (n, len(labels)):
        raise Invalid(
            f"multi-label model returned probabilities of shape {proba.shape}, expected {(n, len(labels))} "
            "(one column per label)"
        )
    if not np.isfinite(proba).all() or (proba < 0).any() or (proba > 1).any():
        raise Invalid("multi-label model returned probabilities outside [0, 1]")
    return proba
