"""DVC: a dataset version written into a DVC (and git) repository, tracked and committed.

``pip install 'loopwright[dvc]'``. :func:`track` takes a directory that
``loopwright datasets export --format dvc`` wrote inside the repository (``<id[:12]>/`` with
``manifest.json``, ``train.jsonl``, ``eval.jsonl``, ``README.md``), runs ``dvc add`` on it through
DVC's Python API (the data goes to the DVC cache, ``<id[:12]>.dvc`` and ``.gitignore`` are
written beside it) and commits those two files with git, so ``git checkout <commit> &&
dvc checkout`` reproduces the same bytes. Tracking a version already committed changes nothing.
``dvc push`` to a remote is left to you (``dvc remote add``).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from loopwright.errors import Invalid

GIT_IDENTITY = {"GIT_AUTHOR_NAME": "loopwright", "GIT_AUTHOR_EMAIL": "loopwright@localhost"}


@dataclass(frozen=True, slots=True)
class Tracked:
    """What :func:`track` did: the data directory, its ``.dvc`` file, the commit (or None when
    nothing changed) and the DVC md5 of the directory."""

    path: Path
    dvc_file: Path
    commit: str | None
    md5: str


def check_repo(repo: Path) -> Path:
    """``repo`` resolved, if it is the top of a git work tree with DVC initialised."""
    repo = Path(repo).resolve()
    if not (repo / ".git").exists():
        raise Invalid(f"{repo} is not a git repository: run `git init && dvc init` there first")
    if not (repo / ".dvc").is_dir():
        raise Invalid(f"{repo} has no DVC project: run `dvc init` there first")
    return repo


def inside(repo: Path, out: Path | None, default: str = "datasets") -> Path:
    """The export directory: ``out`` (relative to the repository) or ``<repo>/<default>``."""
    target = (repo / (default if out is None else out)).resolve()
    if not target.is_relative_to(repo):
        raise Invalid(f"--out {out} is outside the repository {repo}: give a directory inside it")
    return target


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ}
    for key, value in GIT_IDENTITY.items():  # only where neither git config nor env names one
        env.setdefault(key, value)
        env.setdefault(key.replace("AUTHOR", "COMMITTER"), value)
    done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise Invalid(f"git {' '.join(args)} failed in {repo}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip()


def track(repo: Path, data_dir: Path, message: str) -> Tracked:
    """``dvc add data_dir`` and ``git commit`` its ``.dvc`` file and ``.gitignore``."""
    try:
        from dvc.repo import Repo  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise Invalid("--repo needs DVC, which is not installed: pip install 'loopwright[dvc]'") from None
    repo = check_repo(repo)
    data_dir = Path(data_dir).resolve()
    if not data_dir.is_relative_to(repo):
        raise Invalid(f"{data_dir} is outside the repository {repo}")
    with Repo(str(repo)) as dvc:
        dvc.scm_context.quiet = True  # no "to track the changes with git, run …" hint: we commit
        dvc.add(str(data_dir))
    dvc_file = data_dir.with_name(data_dir.name + ".dvc")
    gitignore = data_dir.parent / ".gitignore"
    _git(repo, "add", "--", str(dvc_file.relative_to(repo)), str(gitignore.relative_to(repo)))
    staged = _git(repo, "diff", "--cached", "--name-only")
    commit = None
    if staged:
        _git(repo, "commit", "--quiet", "-m", message)
        commit = _git(repo, "rev-parse", "HEAD")
    return Tracked(data_dir, dvc_file, commit, _md5(dvc_file))


def _md5(dvc_file: Path) -> str:
    """The directory's md5 recorded in its ``.dvc`` file (``outs[0].md5``)."""
    import yaml

    outs = (yaml.safe_load(dvc_file.read_text(encoding="utf-8")) or {}).get("outs") or [{}]
    return str(outs[0].get("md5", ""))
