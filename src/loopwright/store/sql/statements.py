"""The statements of the annotator cycle (claim, submit, their events), built once.

Every ``next`` and ``submit`` runs these; written as plain SQL (:class:`PlainSql`) or compiled
once per dialect (:class:`CompiledSql`, the claim), they skip SQLAlchemy's per-call expression
building and compilation (measured in ``bench/results/load.md``). The claim's filter and
order are the expressions of :mod:`.review`, so there is one definition of "claimable".
"""

# No ``from __future__ import annotations`` here: it would clash with the annotations table.

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Integer,
    String,
    Table,
    bindparam,
    exists,
    insert,
    literal,
    select,
)

from loopwright.store.sql.plain import CompiledSql, PlainSql
from loopwright.store.sql.tables import (
    UtcDateTime,
    annotations,
    events,
    items,
    leases,
    predictions,
    resolutions,
    tasks,
)


def _cols(table: Table) -> str:
    return ", ".join(c.name for c in table.c)


def _insert(table: Table, names: tuple[str, ...], tail: str = "") -> PlainSql:
    values = ", ".join(f":{n}" for n in names)
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({values}){tail} RETURNING {_cols(table)}"
    return PlainSql(sql, table.c)


TASK_GET = PlainSql(f"SELECT {_cols(tasks)} FROM tasks WHERE id = :id", tasks.c)
TASK_LOCK = PlainSql(f"SELECT {_cols(tasks)} FROM tasks WHERE id = :id {{lock}}", tasks.c, lock="FOR UPDATE")
# the audit evidence's project when the task's item was audited (repositories.EvidenceMarks), else NULL
AUDITED_PROJECT = Column("audited_project", Integer)
IF_AUDITED = (
    "CASE WHEN EXISTS (SELECT 1 FROM decisions WHERE decisions.item_id = tasks.item_id AND decisions.audit)"
    " THEN tasks.project_id END"
)
TASK_BUMP = PlainSql(
    f"UPDATE tasks SET n_annotations = n_annotations + 1 WHERE id = :id RETURNING {IF_AUDITED}",
    [AUDITED_PROJECT],
)
TASK_STATUS = PlainSql(
    f"UPDATE tasks SET status = :status, closed_at = :closed_at WHERE id = :id RETURNING {_cols(tasks)}",
    tasks.c,
)
LEASE_GET = PlainSql(f"SELECT {_cols(leases)} FROM leases WHERE id = :id", leases.c)
LEASE_STATUS = PlainSql(
    f"UPDATE leases SET status = :status WHERE id = :id RETURNING {_cols(leases)}", leases.c
)
ANNOTATION_ADD = _insert(
    annotations,
    ("task_id", "item_id", "lease_id", "annotator", "label", "unsure", "created_at", "suggested"),
    " ON CONFLICT DO NOTHING",
)
ANNOTATIONS_OF_TASK = PlainSql(
    f"SELECT {_cols(annotations)} FROM annotations WHERE task_id = :task_id ORDER BY id", annotations.c
)
RESOLUTION_ADD = _insert(
    resolutions, ("item_id", "task_id", "label", "method", "agreement", "n_annotations", "created_at")
)
EVENT_ADD = _insert(events, ("project_id", "actor", "action", "subject_type", "subject_id", "data", "at"))
PREDICTIONS_OF_ITEM = PlainSql(
    f"SELECT {_cols(predictions)} FROM predictions WHERE item_id = :item_id ORDER BY id", predictions.c
)
ITEM_GET = PlainSql(f"SELECT {_cols(items)} FROM items WHERE id = :id", items.c)

Claimable = Callable[[Any, Any], ColumnElement[bool]]
_CLAIMS: dict[tuple[Any, ...], CompiledSql] = {}
_LOCK = threading.Lock()


def _annotator() -> Any:
    return bindparam("annotator", type_=String)


def _now() -> Any:
    return bindparam("now", type_=UtcDateTime)


def claim_candidate(
    claimable: Claimable, order: list[Any], n_tiers: int, key: tuple[Any, ...]
) -> CompiledSql:
    """The first claimable task row by ``order``, locked ``FOR UPDATE SKIP LOCKED`` on
    PostgreSQL; parameters ``project_id``, ``annotator``, ``now``, ``tier_0`` … and whatever
    ``order`` binds. Cached by ``key`` (the caller's description of ``claimable`` and ``order``)."""
    full = ("candidate", n_tiers, *key)
    with _LOCK:
        if full not in _CLAIMS:
            tiers = [bindparam(f"tier_{i}", type_=Integer) for i in range(n_tiers)]
            stmt = (
                select(tasks)
                .where(
                    tasks.c.project_id == bindparam("project_id", type_=Integer),
                    tasks.c.tier.in_(tiers),
                    claimable(_annotator(), _now()),
                )
                .order_by(*order)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            _CLAIMS[full] = CompiledSql(stmt, tasks.c)
        return _CLAIMS[full]


def lease_if_claimable(claimable: Claimable, key: tuple[Any, ...]) -> CompiledSql:
    """``INSERT INTO leases … SELECT … WHERE <task task_id is still claimable> RETURNING *``:
    a new statement, so on PostgreSQL (READ COMMITTED) it sees the leases of any claimer that
    committed after the candidate was chosen; no row back means someone else took the slot.
    Parameters ``task_id``, ``annotator``, ``now``, ``expires_at``, ``session_id``."""
    full = ("lease", *key)
    with _LOCK:
        if full not in _CLAIMS:
            still = exists().where(
                tasks.c.id == bindparam("task_id", type_=Integer), claimable(_annotator(), _now())
            )
            row = select(
                bindparam("task_id", type_=Integer),
                _annotator(),
                literal("active", String),
                bindparam("expires_at", type_=UtcDateTime),
                _now(),
                bindparam("session_id", type_=String),
            ).where(still)
            names = ["task_id", "annotator", "status", "expires_at", "created_at", "session_id"]
            stmt = insert(leases).from_select(names, row).returning(*leases.c)
            _CLAIMS[full] = CompiledSql(stmt, leases.c)
        return _CLAIMS[full]
