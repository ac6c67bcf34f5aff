"""Dense features for diversity sampling: numbers as they are, text through TF-IDF + truncated SVD."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from loopwright.active.diversity import as_points

if TYPE_CHECKING:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer


class TextEmbedding:
    """Unit-length LSA vectors: TF-IDF (as the default text model uses) → ``TruncatedSVD``.

    Fit it once on the whole pool (unsupervised, no labels); distances between the vectors
    are then cosine-like, which is what k-center and k-means++ need for text.
    """

    def __init__(self, dimensions: int = 100, seed: int = 0) -> None:
        self.dimensions = dimensions
        self.seed = seed
        self._tfidf: TfidfVectorizer | None = None
        self._svd: TruncatedSVD | None = None

    def fit(self, texts: Sequence[str]) -> TextEmbedding:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer  # on use: keeps start-up light

        self._tfidf = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2))
        counts = self._tfidf.fit_transform(list(texts))
        self._svd = TruncatedSVD(max(1, min(self.dimensions, counts.shape[1] - 1)), random_state=self.seed)
        self._svd.fit(counts)
        return self

    def __call__(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if self._tfidf is None or self._svd is None:
            raise RuntimeError("call fit(texts) before embedding")
        vectors = self._svd.transform(self._tfidf.transform(list(texts)))
        from sklearn.preprocessing import normalize  # on use: keeps start-up light

        return np.asarray(normalize(vectors), dtype=np.float32)


def is_text(X: Any) -> bool:
    """True for a list or 1-D array of strings."""
    return len(X) > 0 and isinstance(X[0], str)


def dense(X_pool: Any, X_labelled: Any) -> tuple[NDArray[np.float32], NDArray[np.float32] | None]:
    """Pool and labelled features as float32 matrices; text is embedded by a ``TextEmbedding``
    fitted on the pool and labelled texts together."""
    labelled = X_labelled is not None and len(X_labelled) > 0
    if is_text(X_pool):
        texts = [*X_pool, *X_labelled] if labelled else list(X_pool)
        embed = TextEmbedding().fit(texts)
        return embed(X_pool), embed(X_labelled) if labelled else None
    return as_points(X_pool), as_points(X_labelled, "labelled") if labelled else None
