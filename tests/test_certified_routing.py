"""Certified routing through the loop: the audit certifies the threshold the router then uses."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from loopwright import Loop, Workspace
from loopwright.domain import Route, Split
from loopwright.routing import min_evidence_for
from loopwright.store.sql import SqlStore

EPSILON, DELTA = 0.1, 0.1  # certifying needs 22 audited items without an error
CONFIG: dict[str, Any] = {
    "name": "certified",
    "labels": ["a", "b"],
    "features": ["x"],
    "routing": {
        "audit_rate": 0.5,
        "certify": {"epsilon": EPSILON, "delta": DELTA},
        "bands": [{"min_confidence": 0.0, "tier": 1}],
    },
    "tiers": [{"tier": 1, "name": "bulk", "required_annotations": 1}],
    "retrain": {"eval_fraction": 0.2},
}


def confident_model(X: NDArray[np.float64]) -> NDArray[np.float64]:
    """``a`` below 0, ``b`` above; confidence grows with |x| from 0.5 to 1 at |x| = 10."""
    x = X[:, 0]
    p_b = np.clip(0.5 + x / 20.0, 0.0, 1.0)
    return np.column_stack([1.0 - p_b, p_b])


def truth(x: float, wrong_below: float) -> str:
    """The model's label, except that it is wrong on |x| < ``wrong_below``."""
    right = "b" if x > 0 else "a"  # at x = 0 the model says "a" (a tie goes to the first)
    return right if abs(x) >= wrong_below else ("b" if right == "a" else "a")


def stream(start: int, n: int) -> list[dict[str, Any]]:
    xs = np.linspace(-10, 10, 101)
    return [{"external_id": f"x{i}", "payload": {"x": float(xs[i % 101])}} for i in range(start, start + n)]


def label_everything(loop: Loop, wrong_below: float) -> None:
    while (a := loop.next_task("ann")) is not None:
        loop.submit(a.lease.id, "ann", truth(a.item.payload["x"], wrong_below))


def audited_evidence(loop: Loop) -> list[tuple[float, bool]]:
    """(model confidence, model right) for every audited, resolved item."""
    out = []
    with loop._ctx.store.unit_of_work() as uow:
        resolved = uow.resolutions.latest_by_item(loop.project.id)
        for item_id in uow.decisions.audited_items(loop.project.id):
            if item_id in resolved:
                x = uow.items.get(item_id).payload["x"]
                p = confident_model(np.array([[x]]))[0]
                out.append((float(p.max()), ["a", "b"][int(p.argmax())] == resolved[item_id].label))
    return out


def test_nothing_is_auto_accepted_until_the_audit_certifies(store: SqlStore) -> None:
    loop = Workspace(store).create_project(CONFIG)
    assert loop.status().routing.startswith("uncertified (no champion yet)")
    loop.use_model(confident_model, force=True, persist=False)
    first = loop.ingest(stream(0, 60))
    reasons = {o.reason for o in first.outcomes}
    assert first.count(route=Route.AUTO_ACCEPT) == 0 and reasons == {"audit", "uncertified"}
    cert = loop.status().certification
    assert cert is not None and cert.threshold is None and cert.n_audited == 0
    assert "nothing certified" in cert.reason

    label_everything(loop, wrong_below=0.0)  # a perfect model
    second = loop.ingest(stream(60, 101))
    evidence = audited_evidence(loop)
    assert len(evidence) >= min_evidence_for(EPSILON, DELTA) == 22 and all(ok for _, ok in evidence)
    status = loop.status()
    cert = status.certification
    assert cert is not None and cert.n_audited == len(evidence) and cert.n_errors == 0
    assert cert.threshold == min(c for c, _ in evidence)  # every audited item is right
    assert status.routing.startswith(f"certified threshold {cert.threshold:.4f}: error ≤ 0.1")
    auto = [o for o in second.outcomes if o.route is Route.AUTO_ACCEPT]
    assert auto and all(o.confidence is not None and o.confidence >= cert.threshold for o in auto)
    not_audited = [o for o in second.outcomes if o.reason != "audit"]
    assert len(auto) == sum(o.confidence >= cert.threshold for o in not_audited)  # type: ignore[operator]
    actions = [e.action for e in loop.events(limit=500)]
    assert actions.count("routing.certified") == 2
    assert loop.certify() == cert  # nothing changed: the stored certificate stands
    assert [e.action for e in loop.events(limit=500)].count("routing.certified") == 2


def test_errors_in_the_audit_raise_the_certified_threshold(store: SqlStore) -> None:
    loop = Workspace(store).create_project(CONFIG)
    loop.use_model(confident_model, force=True, persist=False)
    loop.ingest(stream(0, 202))
    label_everything(loop, wrong_below=3.0)  # wrong whenever confidence < 0.65
    loop.ingest(stream(202, 1))
    cert = loop.status().certification
    evidence = audited_evidence(loop)
    assert cert is not None and cert.threshold is not None and cert.n_errors == 0
    wrong = [c for c, ok in evidence if not ok]
    assert wrong and cert.threshold > max(wrong)  # the scan stopped above every error
    assert cert.n_evidence == sum(c >= cert.threshold for c, _ in evidence)


def test_audited_items_are_never_trained_on(store: SqlStore) -> None:
    loop = Workspace(store).create_project(CONFIG)
    loop.use_model(confident_model, force=True, persist=False)
    loop.ingest(stream(0, 40))
    label_everything(loop, wrong_below=0.0)
    version = loop.snapshot()
    with store.unit_of_work() as uow:
        audited = set(uow.decisions.audited_items(loop.project.id))
    assert audited and {e.item_id for e in version.entries if e.split is Split.EVAL} >= audited
    assert all(e.source == "audit" for e in version.entries if e.item_id in audited)
