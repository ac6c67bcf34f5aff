"""Real inference servers for the serving tests, started as subprocesses on 127.0.0.1 from their
own venvs (``scripts/serving-env.sh``): MLServer (Open Inference Protocol) from ``.venv-serving``
and ``mlflow models serve`` (``/invocations``) from ``.venv-serving-mlflow``.

``LOOPWRIGHT_TEST_MLSERVER`` / ``LOOPWRIGHT_TEST_MLFLOW`` name the binaries (default: those
venvs'); without one the tests skip, or fail when ``LOOPWRIGHT_REQUIRE_SERVING=1`` (as in CI).

The one stand-in here is :class:`SilentServer`, a socket that accepts connections and never
answers: the only way to test a deadline against a server that hangs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest

from live import free_port

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MLSERVER = ROOT / ".venv-serving" / "bin" / "mlserver"
DEFAULT_MLFLOW = ROOT / ".venv-serving-mlflow" / "bin" / "mlflow"
DIGIT_LABELS = [str(d) for d in range(10)]

# A custom MLServer runtime whose probabilities are garbage: each row sums to 2.
GARBAGE_RUNTIME = """
import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class Garbage(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        n = payload.inputs[0].shape[0]
        out = NumpyCodec.encode_output("predict_proba", np.full((n, 10), 0.2))
        return InferenceResponse(model_name=self.name, model_version=self.version, outputs=[out])
"""


def mlserver_binary() -> Path:
    """The ``mlserver`` to start; skips (or fails, if required) when there is none."""
    return _binary("LOOPWRIGHT_TEST_MLSERVER", DEFAULT_MLSERVER, "MLServer")


def mlflow_binary() -> Path:
    """The ``mlflow`` to start ``mlflow models serve`` with; skips (or fails) without one."""
    return _binary("LOOPWRIGHT_TEST_MLFLOW", DEFAULT_MLFLOW, "MLflow")


def _binary(variable: str, default: Path, what: str) -> Path:
    path = Path(os.environ.get(variable) or default)
    if path.is_file() and os.access(path, os.X_OK):
        return path
    reason = f"no {what} at {path}: run scripts/serving-env.sh (or set {variable} to the binary)"
    if os.environ.get("LOOPWRIGHT_REQUIRE_SERVING") == "1":
        pytest.fail(reason + " — LOOPWRIGHT_REQUIRE_SERVING=1 makes this a failure")
    pytest.skip(reason)


def fit_digits(n_train: int = 600, seed: int = 0) -> tuple[Any, np.ndarray]:
    """A scikit-learn model fitted on real digits, and the images it was not trained on."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    X, y = X[order], y[order]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=2000))
    model.fit(X[:n_train], y[:n_train])
    return model, X[n_train:]


def save_sklearn(models_dir: Path, name: str, model: Any, version: str, labels: list[str] | None) -> None:
    """The layout MLServer's scikit-learn runtime loads: ``model-settings.json`` + joblib; the
    output labels go into the model metadata when given."""
    folder = models_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "model.joblib")
    settings: dict[str, Any] = {
        "name": name,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": version},
    }
    if labels is not None:
        settings["outputs"] = [
            {
                "name": "predict_proba",
                "datatype": "FP64",
                "shape": [-1, len(labels)],
                "parameters": {"labels": labels},
            }
        ]
    (folder / "model-settings.json").write_text(json.dumps(settings))


def save_garbage(models_dir: Path, name: str) -> None:
    folder = models_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "garbage.py").write_text(GARBAGE_RUNTIME)
    settings = {"name": name, "implementation": "garbage.Garbage", "parameters": {"version": "g1"}}
    (folder / "model-settings.json").write_text(json.dumps(settings))


class MLServer:
    """``mlserver start <models_dir>`` on 127.0.0.1:<port>; :meth:`start` waits for readiness."""

    def __init__(self, binary: Path, models_dir: Path, port: int | None = None) -> None:
        self.binary, self.models_dir = binary, models_dir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = models_dir / "mlserver.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> MLServer:
        settings = {
            "host": "127.0.0.1",
            "http_port": self.port,
            "grpc_port": free_port(),
            "metrics_endpoint": None,
            "parallel_workers": 0,
            "debug": False,
        }
        (self.models_dir / "settings.json").write_text(json.dumps(settings))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(self.binary), "start", str(self.models_dir)],
                cwd=self.models_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        _wait_ready(self.proc, self.url + "/v2/health/ready", timeout, self.log, self.stop)
        return self

    def stop(self) -> None:
        """Kill the server (and its process group: MLServer may fork workers)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None


def save_mlflow(binary: Path, model: Any, path: Path) -> Path:
    """``mlflow.sklearn.save_model`` with ``predict_proba`` as the pyfunc, run by the MLflow
    venv's own Python (MLflow is not installed in the main venv)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pickled = path.parent / "model.joblib"
    joblib.dump(model, pickled)
    code = (
        "import sys, joblib, mlflow.sklearn; "
        "mlflow.sklearn.save_model(joblib.load(sys.argv[1]), sys.argv[2], "
        "pyfunc_predict_fn='predict_proba', serialization_format='pickle')"
    )
    subprocess.run([str(binary.parent / "python"), "-c", code, str(pickled), str(path)], check=True)
    return path


class MLflowServer:
    """``mlflow models serve -m <model> --env-manager local`` on 127.0.0.1:<port>."""

    def __init__(self, binary: Path, model_dir: Path, port: int | None = None) -> None:
        self.binary, self.model_dir = binary, model_dir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = model_dir.parent / "mlflow.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> MLflowServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
        env["PATH"] = f"{self.binary.parent}{os.pathsep}{env.get('PATH', '')}"  # its uvicorn
        cmd = [str(self.binary), "models", "serve", "-m", str(self.model_dir), "-h", "127.0.0.1"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*cmd, "-p", str(self.port), "--env-manager", "local"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        _wait_ready(self.proc, self.url + "/ping", timeout, self.log, self.stop)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None


def _wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float, log: Path, stop: Any) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop()
    raise RuntimeError(f"server not ready after {timeout} s:\n{log.read_text()[-3000:]}")


class SilentServer:
    """Accepts TCP connections and never answers (a hung inference server)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)  # read nothing, answer nothing

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for c in self.conns:
            c.close()
        self.sock.close()
