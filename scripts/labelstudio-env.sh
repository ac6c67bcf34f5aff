#!/usr/bin/env bash
# Builds .venv-ls: the real Label Studio server that the Label Studio tests (pytest -m
# labelstudio) and the peer benchmark start, never in the main .venv (Django and its pins would
# clash with ours). Tested with label-studio 1.23.2; LABEL_STUDIO_VERSION pins one. Idempotent;
# --force runs the install again. The tests keep a migrated, empty data directory in
# .venv-ls/loopwright-test-data (a fresh one costs minutes of migrations); delete it after an
# upgrade if a start from it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${LOOPWRIGHT_LS_VENV:-.venv-ls}"
if [[ -x "$venv/bin/label-studio" && "${1:-}" != "--force" ]]; then
    echo "ready: $venv/bin/label-studio"
    exit 0
fi
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip 2>&1 | grep -v 'is ignored' || true
"$venv/bin/pip" install --quiet "label-studio${LABEL_STUDIO_VERSION:+==$LABEL_STUDIO_VERSION}" 2>&1 \
    | grep -v 'is ignored' || true
"$venv/bin/python" -c 'import label_studio; print("label-studio", label_studio.__version__)'
echo "ready: $venv/bin/label-studio"
