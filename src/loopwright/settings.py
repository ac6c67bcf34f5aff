"""The one module that reads the environment (prefix ``LOOPWRIGHT_``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    db_url: str
    serve_open: bool = False  # LOOPWRIGHT_SERVE_OPEN=1: no authentication (`serve --open`)
    public_metrics: bool = False  # LOOPWRIGHT_PUBLIC_METRICS=1: /metrics without a token
    # LOOPWRIGHT_WEBHOOK_ALLOW="hooks.internal,10.0.0.0/8": webhook targets besides public addresses
    webhook_allow: tuple[str, ...] = ()
    webhook_timeout: float = 10.0  # LOOPWRIGHT_WEBHOOK_TIMEOUT: seconds per delivery attempt, in all
    max_body_bytes: int = 32 * 1024 * 1024  # LOOPWRIGHT_MAX_BODY_BYTES: larger request bodies get 413
    broker_url: str | None = None  # LOOPWRIGHT_BROKER_URL=nats://host:4222: serve publishes events there
    # LOOPWRIGHT_POOL_ROOTS="/data/pools,s3://bucket/pools": where POST …/select may read pools
    pool_roots: tuple[str, ...] = ()
    dask_scheduler: str | None = None  # LOOPWRIGHT_DASK_SCHEDULER=tcp://host:8786: select jobs run there

    @classmethod
    def from_env(cls) -> Settings:
        """``LOOPWRIGHT_HOME`` (default: the working directory) and ``LOOPWRIGHT_DB_URL``
        (default: SQLite file ``loopwright.db`` under the home); the server flags
        ``LOOPWRIGHT_SERVE_OPEN`` and ``LOOPWRIGHT_PUBLIC_METRICS`` ("1": on)."""
        home = Path(os.environ.get("LOOPWRIGHT_HOME") or Path.cwd())
        url = os.environ.get("LOOPWRIGHT_DB_URL") or f"sqlite:///{home / 'loopwright.db'}"
        serve_open = os.environ.get("LOOPWRIGHT_SERVE_OPEN") == "1"
        public_metrics = os.environ.get("LOOPWRIGHT_PUBLIC_METRICS") == "1"
        allow_list = os.environ.get("LOOPWRIGHT_WEBHOOK_ALLOW", "").split(",")
        allow = tuple(e.strip() for e in allow_list if e.strip())
        raw = os.environ.get("LOOPWRIGHT_WEBHOOK_TIMEOUT") or "10"
        try:
            webhook_timeout = float(raw)
        except ValueError:
            raise ValueError(f"LOOPWRIGHT_WEBHOOK_TIMEOUT={raw!r} is not a number of seconds") from None
        if not 0 < webhook_timeout <= 300:
            raise ValueError(f"LOOPWRIGHT_WEBHOOK_TIMEOUT={raw!r}: give 0 < seconds <= 300")
        raw_max = os.environ.get("LOOPWRIGHT_MAX_BODY_BYTES") or str(32 * 1024 * 1024)
        if not raw_max.isdigit() or int(raw_max) < 1:
            raise ValueError(f"LOOPWRIGHT_MAX_BODY_BYTES={raw_max!r}: give a positive number of bytes")
        return cls(
            home=home,
            db_url=url,
            serve_open=serve_open,
            public_metrics=public_metrics,
            webhook_allow=allow,
            webhook_timeout=webhook_timeout,
            max_body_bytes=int(raw_max),
            broker_url=os.environ.get("LOOPWRIGHT_BROKER_URL") or None,
            pool_roots=tuple(
                r.strip() for r in os.environ.get("LOOPWRIGHT_POOL_ROOTS", "").split(",") if r.strip()
            ),
            dask_scheduler=os.environ.get("LOOPWRIGHT_DASK_SCHEDULER") or None,
        )


def secret(name: str) -> str | None:
    """The value of the environment variable ``name`` (an API key a project names by variable,
    e.g. a model annotator's ``api_key_env``), or None when unset or empty."""
    return os.environ.get(name) or None
