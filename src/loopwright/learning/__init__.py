"""The learning half: dataset versions, estimators, artifacts and the promotion gate.

Importing it is light: scikit-learn, SciPy and skops load inside the functions that use them.
(The names stay eager: ``gate`` is both a submodule and a function, and a lazy package
attribute would return the submodule once anyone imported ``loopwright.learning.gate``.)
"""

from loopwright.learning.artifact import dump_model, load_model
from loopwright.learning.dataset import build_version, split_for
from loopwright.learning.estimators import (
    ProbabilisticModel,
    as_model,
    default_estimator,
    featurize,
    predict_proba_by_label,
)
from loopwright.learning.gate import GateResult, gate

__all__ = [
    "GateResult",
    "ProbabilisticModel",
    "as_model",
    "build_version",
    "default_estimator",
    "dump_model",
    "featurize",
    "gate",
    "load_model",
    "predict_proba_by_label",
    "split_for",
]
