"""DVC: ``loopwright datasets export REF --format dvc --repo PATH`` into a real git+DVC repository.

Two dataset versions (tests/test_registry.py's seed: v2 adds 6 items and relabels 3) are
exported, ``dvc add``-ed and committed one after the other by the CLI, run as a user runs it.
Deleting the data and running ``dvc checkout`` (the real ``dvc``) gives back the same bytes, at
the last commit and at the first; git holds only the ``.dvc`` files and ``.gitignore``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from integration_world import require
from loopwright.store.sql import SqlStore
from test_registry import seed

pytestmark = pytest.mark.integrations
FILES = ["README.md", "eval.jsonl", "manifest.json", "train.jsonl"]


def _env(tmp: Path) -> dict[str, str]:
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp),
        "COLUMNS": "200",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@localhost",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@localhost",
    }


def _sh(tmp: Path, cwd: Path, *args: str) -> str:
    done = subprocess.run(args, cwd=cwd, env=_env(tmp), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
    return done.stdout


def _cli(tmp: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "loopwright", *args, "--db", url]
    return subprocess.run(cmd, cwd=tmp, env=_env(tmp), capture_output=True, text=True, timeout=300)


def _digests(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str, str]:
    require("dvc.repo", "dvc")
    tmp = tmp_path_factory.mktemp("dvc")
    url = f"sqlite:///{tmp / 'loop.db'}"
    store = SqlStore(url)
    seeded = seed(store)
    store.close()
    return tmp, url, seeded.v1.id, seeded.v2.id


def test_export_add_commit_checkout(world: tuple[Path, str, str, str]) -> None:
    tmp, url, v1, v2 = world
    repo = tmp / "repo"
    repo.mkdir()
    _sh(tmp, repo, "git", "init", "-q")
    _sh(tmp, repo, sys.executable, "-m", "dvc", "init", "-q")
    _sh(tmp, repo, "git", "commit", "-q", "-m", "dvc init")

    commits, digests = [], {}
    for version in (v1, v2):
        done = _cli(
            tmp, url, "datasets", "export", version[:10], "--format", "dvc", "--repo", str(repo), "--json"
        )
        assert done.returncode == 0, done.stderr
        body = json.loads(done.stdout)
        data = repo / "datasets" / version[:12]
        assert body["path"] == str(data) and body["dvc_file"] == str(data) + ".dvc"
        assert body["commit"] == _sh(tmp, repo, "git", "rev-parse", "HEAD").strip()
        assert sorted(Path(f).name for f in body["files"]) == FILES
        digests[version] = _digests(data)
        assert {Path(f).name: d for f, d in body["files"].items()} == digests[version]
        dvc_yaml = (repo / "datasets" / f"{version[:12]}.dvc").read_text()
        assert f"md5: {body['md5']}" in dvc_yaml and f"path: {version[:12]}" in dvc_yaml
        commits.append(body["commit"])
    assert len(set(commits)) == 2
    shown = _sh(tmp, repo, "git", "show", "--name-only", "--format=%s", commits[1]).split()
    assert shown[:6] == ["loopwright:", "dataset", "version", v2[:12], "of", "toy"]
    assert sorted(shown[6:]) == ["datasets/.gitignore", f"datasets/{v2[:12]}.dvc"]
    tracked = _sh(tmp, repo, "git", "ls-files").split()
    assert not [f for f in tracked if f.endswith(".jsonl")]  # the data lives in DVC's cache
    assert sorted(f"/{v[:12]}" for v in (v1, v2)) == sorted(
        (repo / "datasets" / ".gitignore").read_text().split()
    )

    # The same version again: nothing to commit.
    again = _cli(tmp, url, "datasets", "export", v2, "--format", "dvc", "--repo", str(repo))
    assert again.returncode == 0 and "already committed" in again.stdout, again.stderr
    assert _sh(tmp, repo, "git", "rev-parse", "HEAD").strip() == commits[1]

    # Lose the data; `dvc checkout` brings back the same bytes, at the last commit and the first.
    for version in (v1, v2):
        shutil.rmtree(repo / "datasets" / version[:12])
    _sh(tmp, repo, sys.executable, "-m", "dvc", "checkout", "-q")
    for version in (v1, v2):
        assert _digests(repo / "datasets" / version[:12]) == digests[version]
    _sh(tmp, repo, "git", "checkout", "-q", commits[0])
    shutil.rmtree(repo / "datasets" / v1[:12])
    _sh(tmp, repo, sys.executable, "-m", "dvc", "checkout", "-q")
    assert _digests(repo / "datasets" / v1[:12]) == digests[v1]
    manifest = json.loads((repo / "datasets" / v1[:12] / "manifest.json").read_text())
    assert manifest["id"] == v1 and manifest["n_items"] == 45


def test_bad_repo_and_flags(world: tuple[Path, str, str, str]) -> None:
    tmp, url, v1, _ = world
    plain = tmp / "plain"
    plain.mkdir(exist_ok=True)
    gitonly = tmp / "gitonly"
    gitonly.mkdir(exist_ok=True)
    _sh(tmp, gitonly, "git", "init", "-q")
    cases = [
        (("--format", "dvc", "--repo", str(plain)), "is not a git repository: run `git init && dvc init`"),
        (("--format", "dvc", "--repo", str(gitonly)), "has no DVC project: run `dvc init` there first"),
        (("--format", "jsonl", "--repo", str(gitonly)), "--repo is for --format dvc"),
        (("--format", "dvc"), "give --out PATH (or --format dvc --repo PATH)"),
    ]
    for args, message in cases:
        done = _cli(tmp, url, "datasets", "export", v1, *args)
        assert done.returncode == 2, done.stdout + done.stderr
        assert message in " ".join(done.stderr.split()) and "Traceback" not in done.stderr
    assert not os.listdir(plain) and sorted(os.listdir(gitonly)) == [".git"]
