"""Dawid-Skene EM: full confusion matrices, or one accuracy per worker ("one-coin")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from loopwright.consensus.answers import Answers, Fitted, clamp, encode, gold_rows
from loopwright.errors import Invalid


class DawidSkene(Fitted):
    """Dawid & Skene (1979): each worker has a confusion matrix ``P(answer | true class)``.

    EM starts from the majority-vote shares; the E-step works in log space and gold items stay
    clamped to their true label. Each step is one sparse product over the answer rows: counts of
    (worker, answer) per item, so no Python loop runs over items or workers. ``smoothing`` is a
    pseudo-count added to every confusion cell and class prior. A model can join as one more worker
    (e.g. worker id ``"model"`` answering its predicted label); it gets its own confusion matrix.

    After :meth:`fit`: ``items_``, ``classes_``, ``workers_``, ``labels_``, ``probas_`` (posterior
    per item, columns keyed by ``classes_``), ``priors_``, ``confusions_`` (workers x true x
    answered), ``skills_`` (worker → expected accuracy under the posterior), ``n_iter_``,
    ``n_answers_``. :meth:`partial` then scores one more item with those skills held fixed.
    """

    def __init__(self, n_iter: int = 100, tol: float = 1e-5, smoothing: float = 0.01) -> None:
        self.n_iter = n_iter
        self.tol = tol
        self.smoothing = smoothing

    def fit(
        self,
        items: Sequence[str],
        workers: Sequence[str],
        labels: Sequence[str],
        gold: Mapping[str, str] | None = None,
    ) -> DawidSkene:
        if self.n_iter < 1 or self.tol < 0 or self.smoothing < 0:
            raise Invalid("n_iter must be >= 1, tol and smoothing >= 0")
        ans = encode(items, workers, labels, gold=gold)
        gold_pos, gold_cls = gold_rows(ans, gold)
        n_items, n_workers, k = len(ans.items), len(ans.workers), len(ans.classes)
        # counts[i, w*k + l] = how often worker w answered l on item i
        from scipy import sparse  # on use: keeps start-up light

        counts = sparse.csr_matrix(
            (np.ones(len(ans.item_idx)), (ans.item_idx, ans.worker_idx * k + ans.label_idx)),
            shape=(n_items, n_workers * k),
        )
        seen = counts.T.tocsr()
        post = _vote_shares(ans)
        clamp(post, gold_pos, gold_cls)
        loglik = -np.inf
        it = 0
        while it < self.n_iter:
            it += 1
            log_prior, log_conf = self._m_step(seen @ post, post, n_workers, k)
            log_post = log_prior + counts @ log_conf.reshape(n_workers * k, k)
            top = log_post.max(axis=1, keepdims=True)
            post = np.exp(log_post - top)
            total = post.sum(axis=1, keepdims=True)
            post /= total
            norm = top + np.log(total)
            clamp(post, gold_pos, gold_cls)
            new_loglik = float(norm.sum()) / n_items
            if new_loglik - loglik < self.tol:
                break
            loglik = new_loglik
        self.n_iter_ = it
        self.items_, self.workers_, self.classes_ = ans.items, ans.workers, ans.classes
        self.probas_: NDArray[np.float64] = post
        self.labels_ = ans.classes[post.argmax(axis=1)]
        self.priors_ = np.exp(log_prior)
        self.confusions_ = np.exp(log_conf).transpose(0, 2, 1)
        self.n_answers_ = len(ans.item_idx)
        cell = (seen @ post).reshape(n_workers, k, k)  # worker, answered, true
        self.skills_ = dict(zip(ans.workers.tolist(), _accuracy(cell).tolist(), strict=True))
        return self

    def partial(self, workers: Sequence[str], labels: Sequence[str]) -> NDArray[np.float64]:
        """One item's posterior over ``classes_`` from its answers, with the fitted skills.

        The E-step of :meth:`fit` for one item, the priors and confusion matrices held fixed: the
        incremental path, so consolidating an item costs its own answers, not the project's. A
        worker the fit never saw gets the mean confusion matrix of the fitted workers. A label
        outside ``classes_`` raises Invalid (refit instead).
        """
        if len(workers) != len(labels):
            raise Invalid("workers and labels must have the same length")
        known = {c: i for i, c in enumerate(self.classes_.tolist())}
        missing = [label for label in labels if label not in known]
        if missing:
            raise Invalid(f"label {missing[0]!r} is not one of the fitted classes")
        index = {w: i for i, w in enumerate(self.workers_.tolist())}
        conf = self.confusions_  # workers x true x answered
        pooled = conf.mean(axis=0)
        log_post = np.log(self.priors_).copy()
        for worker, label in zip(workers, labels, strict=True):
            row = conf[index[worker]] if worker in index else pooled
            log_post += np.log(row[:, known[label]])
        post = np.exp(log_post - log_post.max())
        return post / post.sum()

    def _m_step(
        self, cell: NDArray[np.float64], post: NDArray[np.float64], n_workers: int, k: int
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Log class priors and log ``P(answered | true)`` as workers x answered x true."""
        prior = post.sum(axis=0) + self.smoothing
        conf = cell.reshape(n_workers, k, k) + self.smoothing
        conf /= conf.sum(axis=1, keepdims=True)
        return np.log(prior / prior.sum()), np.log(conf)


class OneCoinDawidSkene(DawidSkene):
    """Dawid-Skene with one accuracy per worker; wrong answers spread uniformly over other classes.

    Fewer parameters than :class:`DawidSkene`, so steadier for workers with few answers.
    ``confusions_`` is still filled (diagonal = accuracy) for a uniform reading.
    """

    def _m_step(
        self, cell: NDArray[np.float64], post: NDArray[np.float64], n_workers: int, k: int
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        prior = post.sum(axis=0) + self.smoothing
        by_worker = cell.reshape(n_workers, k, k)
        correct = np.einsum("wkk->w", by_worker) + self.smoothing
        acc = correct / (by_worker.sum(axis=(1, 2)) + k * self.smoothing)
        off = (1.0 - acc) / max(k - 1, 1)
        eye = np.eye(k, dtype=bool)
        conf = np.where(eye[None], acc[:, None, None], off[:, None, None])
        return np.log(prior / prior.sum()), np.log(conf)


def _vote_shares(ans: Answers) -> NDArray[np.float64]:
    votes = np.zeros((len(ans.items), len(ans.classes)))
    np.add.at(votes, (ans.item_idx, ans.label_idx), 1.0)
    return votes / votes.sum(axis=1, keepdims=True)


def _accuracy(cell: NDArray[np.float64]) -> NDArray[np.float64]:
    """Posterior-weighted share of a worker's answers that match the true class."""
    total = cell.sum(axis=(1, 2))
    return np.einsum("wkk->w", cell) / np.maximum(total, 1e-12)
