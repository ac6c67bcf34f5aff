"""PII scrubbing in the loop: annotators never see personal data; the store keeps it only on request."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from loopwright import Invalid, Workspace
from loopwright.config import PiiKind
from loopwright.privacy import KINDS
from loopwright.store.sql import SqlStore

TEXT = "Call me on +44 20 7946 0958 or mail jo.bloggs+spam@example.com, card 4111 1111 1111 1111."
SCRUBBED = "Call me on [PHONE] or mail [EMAIL], card [CARD]."


def config(**privacy: Any) -> dict[str, Any]:
    return {
        "name": "support",
        "labels": ["billing", "other"],
        "modality": "text",
        "input_field": "text",
        "privacy": {"fields": ["text", "meta.note"], **privacy},
        "tiers": [{"tier": 1, "name": "bulk", "required_annotations": 1}],
        "routing": {"bands": [{"min_confidence": 0.0, "tier": 1}]},
    }


RECORD = {"external_id": "t1", "payload": {"text": TEXT, "meta": {"note": "from 10.0.0.7"}}}


def test_scrubbed_on_ingest_and_never_stored(store: SqlStore) -> None:
    loop = Workspace(store).create_project(config())
    loop.ingest([RECORD])
    with store.unit_of_work() as uow:
        item = uow.items.by_external_ids(loop.project.id, ["t1"])["t1"]
    assert item.payload == {"text": SCRUBBED, "meta": {"note": "from [IP]"}}
    ingested = next(e for e in loop.events() if e.action == "items.ingested")
    assert ingested.data["pii_scrubbed"] == {"PHONE": 1, "EMAIL": 1, "CARD": 1, "IP": 1}
    assert loop.ingest([RECORD]).duplicates == 1  # the same original is the same item
    a = loop.next_task("ann")
    assert a is not None and a.item.payload["text"] == SCRUBBED


def test_kept_originals_are_scrubbed_for_annotators_only(store: SqlStore) -> None:
    loop = Workspace(store).create_project(config(keep_original=True, kinds=["EMAIL"]))
    loop.ingest([RECORD])
    with store.unit_of_work() as uow:
        assert uow.items.by_external_ids(loop.project.id, ["t1"])["t1"].payload == RECORD["payload"]
    a = loop.next_task("ann")
    assert a is not None
    assert a.item.payload["text"] == TEXT.replace("jo.bloggs+spam@example.com", "[EMAIL]")


def test_a_missing_field_rejects_the_batch(store: SqlStore) -> None:
    loop = Workspace(store).create_project(config())
    bad = {"external_id": "t2", "payload": {"text": "no note here"}}
    with pytest.raises(Invalid, match="nothing was ingested") as info:
        loop.ingest([RECORD, bad])
    assert [field for field, _ in info.value.errors] == ["[1].payload.meta.note"]
    assert loop.status().items == 0


def test_config_kinds_match_the_scrubber() -> None:
    assert set(get_args(PiiKind)) == set(KINDS)
