#!/usr/bin/env bash
# Builds the virtualenvs holding the inference servers the serving tests start, never the main
# .venv: MLServer 1.7.1 + its scikit-learn runtime in .venv-serving (it pins fastapi 0.115), and
# MLflow 3.17.2 in .venv-serving-mlflow (it wants fastapi 0.165; 3.18.0 does not install: its
# mlflow-skinny 3.18.0 is not published). scikit-learn is pinned to the main venv's release so
# a model fitted there loads unchanged in either server. Idempotent; --force rebuilds.
set -euo pipefail
cd "$(dirname "$0")/.."
main_python="${LOOPWRIGHT_MAIN_PYTHON:-.venv/bin/python}"
sklearn="$("$main_python" -c 'import sklearn; print(sklearn.__version__)')"

build() {  # build <venv> <binary> <requirement>...
    local venv="$1" binary="$2"
    shift 2
    if [[ -x "$venv/bin/$binary" && "${FORCE:-0}" != 1 ]]; then
        echo "ready: $venv/bin/$binary"
        return
    fi
    "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip 2>&1 | grep -v 'is ignored' || true
    "$venv/bin/pip" install --quiet "$@" "scikit-learn==$sklearn" 2>&1 | grep -v 'is ignored' || true
    "$venv/bin/$binary" --version
    echo "ready: $venv/bin/$binary (scikit-learn $sklearn)"
}

[[ "${1:-}" == "--force" ]] && FORCE=1
build "${LOOPWRIGHT_SERVING_VENV:-.venv-serving}" mlserver "mlserver==1.7.1" "mlserver-sklearn==1.7.1"
build "${LOOPWRIGHT_MLFLOW_VENV:-.venv-serving-mlflow}" mlflow "mlflow==3.17.2"
