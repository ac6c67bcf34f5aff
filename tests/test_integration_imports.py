"""No integration's tool is imported by ``import loopwright``, the CLI or the server app factory
(each is imported only inside ``loopwright.integrations.<tool>``, when used)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

TOOLS = ("dagster", "airflow", "mlflow", "dvc")


@pytest.mark.parametrize(
    "code",
    [
        "import loopwright",
        "import loopwright.cli.app",
        "from loopwright.service.app import create_app",
        "from loopwright import Client",
    ],
)
def test_no_tool_on_import(code: str) -> None:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert not loaded & set(TOOLS), sorted(loaded & set(TOOLS))
