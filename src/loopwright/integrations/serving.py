"""Served models over HTTP: payloads in, probabilities keyed by the project's labels out.

Two wire protocols (``model.protocol``):

- ``open-inference`` — the Open Inference Protocol (KServe v2; MLServer, Triton, KServe):
  ``POST {url}/v2/models/{name}[/versions/{version}]/infer`` with one input tensor built from the
  project's features (tabular: FP64 ``[n, d]`` in ``features`` order; image: the pixel array as
  given, FP64 ``[n, …]``; text: BYTES ``[n]``). It reads the output named ``model.output`` (and
  asks for it, as MLServer's scikit-learn runtime needs for ``predict_proba``), else the first.
- ``mlflow`` — ``POST {url}/invocations`` with ``{"dataframe_split": …}`` (tabular with named
  features) or ``{"inputs": …}``, answered by ``{"predictions": …}``: rows of numbers, or rows
  of ``{label: p}`` objects (then the keys are the labels).

Columns become labels through ``model.labels`` or, for open-inference, the model metadata
(``GET /v2/models/{name}``: ``parameters.labels`` of the output, or of the model), never by
position alone.

Failure handling. Each request has a connect timeout and a total deadline (``timeout_s``,
retries and backoff included). Connection errors, HTTP 5xx and 429 are retried up to
``retries`` times with exponential backoff and jitter (a 429's ``Retry-After`` is honoured
when it fits the deadline). Payload lists are cut into requests of ``batch_size``. Answers are
validated: shape ``[n, k]``, finite, non-negative, each row summing to 1 within ``1e-5`` (rows
are then divided by their sum, so FP32 outputs add up exactly; nothing further off is
"normalised" — a model answering scores, not probabilities, is misconfigured). Anything else —
down, too slow, 4xx, garbage — raises :class:`~loopwright.errors.ModelUnavailable` with the
reason; ingest then routes the items to review as ``model_unavailable`` and loses nothing.

httpx is imported only here (the ``service`` extra).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
from numpy.typing import NDArray

from loopwright.config import Modality, ProjectConfig
from loopwright.errors import ModelUnavailable

if TYPE_CHECKING:
    import httpx

    from loopwright.loop.context import Context
    from loopwright.loop.ports import Scores, UnitOfWork

log = logging.getLogger(__name__)

MODEL_UNAVAILABLE = "model.unavailable"  # the event counting items a served model could not score
SUM_TOLERANCE = 1e-5
BACKOFF_S = 0.1  # the first retry waits about this long; each next one twice as long
BACKOFF_MAX_S = 2.0


@dataclass(frozen=True, slots=True)
class Served:
    """A served model's answer: probabilities (columns in the project's label order) and the
    ``name@version`` that produced them."""

    probabilities: NDArray[np.float64]
    model: str


class ServedModel:
    """A client for the model ``config.model`` names (``kind: http``). Thread-safe; reuses
    connections; :meth:`close` when done."""

    def __init__(
        self,
        config: ProjectConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        random_state: int | None = None,
    ) -> None:
        self.config = config
        self.transport = transport
        self.sleep = sleep
        self.random_state = random_state
        self._client: httpx.Client | None = None
        self._labels: list[str] | None = config.model.labels
        self._rng = np.random.default_rng(random_state)

    # -- public ----------------------------------------------------------------------------

    @property
    def ref(self) -> str:
        """``name@version`` as configured (the answer's own version wins in :class:`Served`)."""
        m = self.config.model
        return f"{m.name or m.protocol}@{m.version or 'latest'}"

    def predict(self, payloads: Sequence[Mapping[str, Any]]) -> Served:
        """Probabilities for ``payloads`` (already validated by ``check_payload``), in requests
        of at most ``batch_size``; ModelUnavailable when the server cannot give them."""
        size = self.config.model.batch_size
        parts: list[NDArray[np.float64]] = []
        model = self.ref
        for start in range(0, len(payloads), size):
            served = self._predict_batch(payloads[start : start + size])
            parts.append(served.probabilities)
            model = served.model
        if not parts:
            return Served(np.zeros((0, len(self.config.labels))), model)
        return Served(np.vstack(parts), model)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- one request -------------------------------------------------------------------------

    def _predict_batch(self, payloads: Sequence[Mapping[str, Any]]) -> Served:
        if self.config.model.protocol == "mlflow":
            answer = self._post("/invocations", _mlflow_request(self.config, payloads))
            matrix, labels = _mlflow_matrix(answer, self._labels, self._fail)
            return Served(self._by_label(matrix, labels, len(payloads)), self.ref)
        answer = self._post(self._model_path() + "/infer", _oip_request(self.config, payloads))
        matrix = _oip_matrix(answer, self.config.model.output, len(payloads), self._fail)
        labels = self._labels if self._labels is not None else self._metadata_labels()
        version = answer.get("model_version") or self.config.model.version or "latest"
        name = answer.get("model_name") or self.config.model.name
        return Served(self._by_label(matrix, labels, len(payloads)), f"{name}@{version}")

    def _model_path(self) -> str:
        m = self.config.model
        path = f"/v2/models/{m.name}"
        return path + (f"/versions/{m.version}" if m.version else "")

    def _metadata_labels(self) -> list[str]:
        """Output labels from ``GET /v2/models/{name}``, cached once found."""
        meta = self._request("GET", self._model_path(), None)
        if not isinstance(meta, Mapping):
            self._fail("model metadata is not a JSON object")
        wanted = self.config.model.output
        outputs = [o for o in meta.get("outputs") or [] if isinstance(o, Mapping)]
        chosen = [o for o in outputs if wanted is None or o.get("name") == wanted][:1]
        for source in [*chosen, meta]:
            labels = (source.get("parameters") or {}).get("labels")
            if isinstance(labels, list) and labels:
                self._labels = [str(x) for x in labels]
                return self._labels
        self._fail(
            "cannot tell which label each output column is: set model.labels in the project, or "
            "publish parameters.labels in the model metadata (the output's or the model's)"
        )

    def _by_label(self, matrix: NDArray[np.float64], labels: Sequence[str], n: int) -> NDArray[np.float64]:
        """Validate the matrix and reorder its columns into the project's labels."""
        if matrix.ndim != 2 or matrix.shape != (n, len(labels)):
            self._fail(
                f"answer has shape {list(matrix.shape)}, expected [{n}, {len(labels)}] (one column per label)"
            )
        if not np.isfinite(matrix).all():
            self._fail("answer holds NaN or infinite probabilities")
        if (matrix < 0).any():
            self._fail("answer holds negative probabilities")
        sums = matrix.sum(axis=1)
        if n and not np.allclose(sums, 1.0, rtol=0.0, atol=SUM_TOLERANCE):
            worst = int(np.argmax(np.abs(sums - 1.0)))
            self._fail(f"probabilities of row {worst} sum to {sums[worst]:.6g}, not 1 (±{SUM_TOLERANCE})")
        position = {label: j for j, label in enumerate(self.config.labels)}
        if unknown := sorted(set(labels) - set(position)):
            self._fail(f"the model predicts label(s) {unknown} outside the project's labels")
        out = np.zeros((n, len(position)))
        for i, label in enumerate(labels):
            out[:, position[label]] = matrix[:, i]
        return out / sums[:, None] if n else out

    # -- HTTP ----------------------------------------------------------------------------------

    def _http(self) -> httpx.Client:
        if self._client is None:
            import httpx

            self._client = httpx.Client(
                base_url=self.config.model.url or "",
                transport=self.transport,
                headers={"user-agent": "loopwright-serving"},
            )
        return self._client

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self._request("POST", path, body)

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        """One JSON call within the deadline, retried on connection errors, 5xx and 429."""
        import httpx

        m = self.config.model
        deadline = time.monotonic() + m.timeout_s
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._fail(f"no answer within the {m.timeout_s:g} s deadline")
            timeout = httpx.Timeout(remaining, connect=min(m.connect_timeout_s, remaining))
            retry_after: float | None = None
            try:
                response = self._http().request(method, path, json=body, timeout=timeout)
            except httpx.TimeoutException as exc:
                if not isinstance(exc, httpx.ConnectTimeout):
                    self._fail(f"no answer within the {m.timeout_s:g} s deadline ({type(exc).__name__})")
                problem = "connection timed out"
            except httpx.TransportError as exc:
                problem = f"cannot connect ({type(exc).__name__}: {exc})"
            else:
                status = response.status_code
                if status < 400:
                    try:
                        return response.json()
                    except ValueError:
                        self._fail(f"HTTP {status} answer is not JSON: {response.text[:200]!r}")
                problem = f"HTTP {status}: {response.text[:200]!r}"
                if status != 429 and status < 500:
                    self._fail(problem)  # a 4xx will not change on retry
                retry_after = _seconds(response.headers.get("retry-after"))
            if attempt >= m.retries:
                self._fail(f"{problem}; gave up after {attempt + 1} attempt(s)")
            base = min(BACKOFF_MAX_S, BACKOFF_S * 2**attempt)
            delay = base / 2 + float(self._rng.uniform(0, base / 2))
            if retry_after is not None:
                delay = max(delay, retry_after)
            if time.monotonic() + delay >= deadline:
                self._fail(f"{problem}; no time left for another attempt within {m.timeout_s:g} s")
            log.info("served model %s: %s; retrying in %.2f s", self.ref, problem, delay)
            self.sleep(delay)
            attempt += 1

    def _fail(self, reason: str) -> NoReturn:
        raise ModelUnavailable(f"served model {self.ref} at {self.config.model.url}: {reason}")


# -- protocol bodies (pure) ----------------------------------------------------------------------


def _input_tensor(config: ProjectConfig, payloads: Sequence[Mapping[str, Any]]) -> Any:
    """The features as the server should see them: strings (text) or a float64 array."""
    key = config.input_key
    if config.modality is Modality.TEXT:
        return [str(p[key]) for p in payloads]
    if config.modality is Modality.TABULAR and config.features is not None:
        return np.asarray([[float(p[f]) for f in config.features] for p in payloads], dtype=np.float64)
    return np.asarray([np.asarray(p[key], dtype=np.float64) for p in payloads], dtype=np.float64)


def _oip_request(config: ProjectConfig, payloads: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    x = _input_tensor(config, payloads)
    name = config.model.input_name
    if isinstance(x, list):
        tensor = {
            "name": name,
            "shape": [len(x)],
            "datatype": "BYTES",
            "data": x,
            "parameters": {"content_type": "str"},
        }
    else:
        tensor = {"name": name, "shape": list(x.shape), "datatype": "FP64", "data": x.ravel().tolist()}
    body: dict[str, Any] = {"inputs": [tensor]}
    if config.model.output:
        body["outputs"] = [{"name": config.model.output}]
    return body


def _oip_matrix(
    answer: Any, wanted: str | None, n: int, fail: Callable[[str], NoReturn]
) -> NDArray[np.float64]:
    outputs = answer.get("outputs") if isinstance(answer, Mapping) else None
    if not isinstance(outputs, list) or not outputs:
        fail("answer has no outputs")
    found = [o for o in outputs if isinstance(o, Mapping) and (wanted is None or o.get("name") == wanted)]
    if not found:
        names = [o.get("name") for o in outputs if isinstance(o, Mapping)]
        fail(f"answer has no output named {wanted!r} (it has {names})")
    out = found[0]
    if out.get("datatype") not in ("FP64", "FP32", "FP16"):
        fail(f"output {out.get('name')!r} is {out.get('datatype')}, not probabilities (FP16/32/64)")
    shape = out.get("shape")
    if not isinstance(shape, list) or len(shape) != 2 or shape[0] != n:
        fail(f"output {out.get('name')!r} has shape {shape}, expected [{n}, number of labels]")
    try:
        return np.asarray(out.get("data"), dtype=np.float64).reshape(shape)
    except (TypeError, ValueError):
        return fail(f"output {out.get('name')!r} data are not {shape} numbers")


def _mlflow_request(config: ProjectConfig, payloads: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    x = _input_tensor(config, payloads)
    if config.modality is Modality.TABULAR and config.features is not None:
        return {"dataframe_split": {"columns": list(config.features), "data": x.tolist()}}
    return {"inputs": x if isinstance(x, list) else x.tolist()}


def _mlflow_matrix(
    answer: Any, labels: list[str] | None, fail: Callable[[str], NoReturn]
) -> tuple[NDArray[np.float64], list[str]]:
    rows = answer.get("predictions") if isinstance(answer, Mapping) else answer
    if not isinstance(rows, list):
        fail("answer has no predictions list")
    if rows and all(isinstance(r, Mapping) for r in rows):
        keys = [str(k) for k in rows[0]]
        if any([str(k) for k in r] != keys for r in rows):
            fail("prediction rows name different labels")
        rows = [list(r.values()) for r in rows]
        labels = keys  # the answer names its columns: trust the names over a configured order
    if labels is None:
        fail("cannot tell which label each column is: set model.labels in the project")
    try:
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), -1), list(labels or ())
    except (TypeError, ValueError):
        return fail("predictions are not rows of numbers"), []


def _seconds(header: str | None) -> float | None:
    try:
        value = float(header) if header is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) and value >= 0 else None


# -- the Scorer port ----------------------------------------------------------------------------


class HttpScorer:
    """The :class:`~loopwright.loop.ports.Scorer` port over a served model, inside one unit of
    work: scores, and registers the answering ``name@version`` on first sight (an event
    ``model.registered``) so every prediction names the version that made it."""

    def __init__(self, ctx: Context, uow: UnitOfWork, served: ServedModel) -> None:
        self.ctx, self.uow, self.served = ctx, uow, served

    def score(self, payloads: Sequence[Mapping[str, Any]]) -> Scores:
        from loopwright.loop.ports import Scores

        try:
            answer = self.served.predict(payloads)
        except ModelUnavailable as exc:  # counted (loopwright_model_unavailable_total), then raised
            self.ctx.event(
                self.uow,
                "system",
                MODEL_UNAVAILABLE,
                ("project", self.ctx.project.name),
                items=len(payloads),
                model=self.served.ref,
                reason=exc.message,
            )
            raise
        labels = self.ctx.labels
        rows = [dict(zip(labels, map(float, row), strict=True)) for row in answer.probabilities]
        return Scores.uniform(self._version_id(answer.model), rows)

    def _version_id(self, ref: str) -> int:
        name, _, tag = ref.rpartition("@")
        models = self.uow.models
        found = models.by_ref(self.ctx.project.id, name, tag)
        if found is None:
            url = self.served.config.model.url
            found = models.register(self.ctx.project.id, name, tag, None, None, url, {"served": True})
            self.ctx.event(
                self.uow,
                "system",
                "model.registered",
                ("model_version", found.version),
                model=ref,
                source="served",
                endpoint=url,
                protocol=self.served.config.model.protocol,
            )
        return found.id


class ServedModels:
    """The scorer factory for ``model.kind: http`` that the faces install
    (``Workspace(store, scorers={"http": ServedModels()})``): one reused client per project
    and model configuration."""

    def __init__(self, transport: httpx.BaseTransport | None = None) -> None:
        self.transport = transport
        self._clients: dict[tuple[int, str], ServedModel] = {}
        self._lock = threading.Lock()

    def __call__(self, ctx: Context, uow: UnitOfWork) -> HttpScorer:
        key = (ctx.project.id, ctx.config.model.model_dump_json())
        with self._lock:
            served = self._clients.get(key)
            if served is None:
                served = self._clients[key] = ServedModel(ctx.config, transport=self.transport)
        return HttpScorer(ctx, uow, served)

    def close(self) -> None:
        with self._lock:
            for served in self._clients.values():
                served.close()
            self._clients.clear()
