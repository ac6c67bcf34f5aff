#!/usr/bin/env bash
# Builds .venv-airflow for the Airflow integration test (tests/test_integration_airflow.py):
# Airflow 3.3.2 pins fastapi 0.136, which loopwright[service] (fastapi >= 0.163) cannot share,
# so it gets its own venv with loopwright (editable, base + the REST client) and the main venv's
# scikit-learn. scripts/airflow-constraints.txt pins every package as resolved once (pip's resolver
# needs half an hour on Airflow's requirements alone). Idempotent; --force rebuilds.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${LOOPWRIGHT_AIRFLOW_VENV:-.venv-airflow}"
main_python="${LOOPWRIGHT_MAIN_PYTHON:-.venv/bin/python}"
if [[ -x "$venv/bin/airflow" && "${1:-}" != "--force" ]]; then
    echo "ready: $venv/bin/airflow"
    exit 0
fi
sklearn="$("$main_python" -c 'import sklearn; print(sklearn.__version__)')"
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/pip" install --quiet -c scripts/airflow-constraints.txt -e '.[airflow]' "apache-airflow==3.3.2" \
    "scikit-learn==$sklearn" 2>&1 \
    | grep -v 'is ignored' || true
"$venv/bin/airflow" version
echo "ready: $venv/bin/airflow (scikit-learn $sklearn)"
