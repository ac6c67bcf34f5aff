"""Near-duplicates on ingest: text by MinHash LSH (datasketch), images by perceptual hash
(imagehash), embeddings by cosine similarity. Text and image band keys are persisted
(``duplicate_keys``), so a batch looks up only its own keys: O(batch), never the project.

A candidate found through a shared band key is confirmed exactly (Jaccard of the shingles,
Hamming distance of the hashes) before a record is linked to it.

What happens to a near duplicate (``duplicates.action``): ``link`` records ``duplicate_of`` only;
``check`` also sends it to a cheap check (tier 1, one annotation, lowest priority); ``reuse``
gives it its original's resolved label (a resolution with method ``reused``, linked in its
lineage to the original's resolution) and sends it to the cheap check when the original has
no resolved label yet. Items drawn for the audit stay audits either way: the audit must stay a
uniform, independently labelled sample."""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Protocol

import numpy as np

from loopwright.config import Modality, ProjectConfig
from loopwright.domain import Resolution, Route, TaskStatus
from loopwright.loop.context import Context
from loopwright.loop.ports import UnitOfWork
from loopwright.routing import RouteChoice

CHECK, REUSE = "near_duplicate", "near_duplicate_reuse"  # the routing reasons


class Incoming(Protocol):  # an ingest record, as far as duplicates are concerned
    @property
    def external_id(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...
    @property
    def embedding(self) -> list[float] | None: ...


@dataclass(frozen=True, slots=True)
class Match:
    original: str  # the external id of the earlier item (or earlier record of the batch)
    kind: str  # text | image | embedding
    similarity: float  # Jaccard, 1 - distance/64, or cosine


@dataclass(slots=True)
class Found:
    matches: dict[int, Match] = field(default_factory=dict)  # record index → its original
    keys: list[list[str]] = field(default_factory=list)  # per record: its band keys to index
    resolved: dict[int, Resolution] = field(default_factory=dict)  # record index → original's label

    def link(self, i: int) -> dict[str, Any]:
        """The metadata linking record ``i`` to its original (and the label it reuses, if any)."""
        m = self.matches[i]
        seen: dict[str, Any] = {"kind": m.kind, "similarity": m.similarity}
        if (r := self.resolved.get(i)) is not None:
            seen["reused"] = {"resolution_id": r.id, "label": r.label}
        return {"duplicate_of": m.original, "duplicate": seen}


# -- text: MinHash over word shingles --------------------------------------------------------


def shingles(text: str, size: int) -> set[str]:
    """Word ``size``-grams of the text, case- and width-folded; a shorter text is one shingle."""
    words = unicodedata.normalize("NFKC", text).casefold().split()
    if len(words) <= size:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


@lru_cache(maxsize=16)
def _bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) minimising false positives and negatives at ``threshold``."""
    from datasketch import MinHashLSH  # the import extra

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return int(lsh.b), int(lsh.r)


def text_keys(grams: set[str], threshold: float, num_perm: int) -> list[str]:
    """The LSH band keys of a shingle set: texts sharing one are candidates."""
    from datasketch import MinHash

    if not grams:
        return []
    m = MinHash(num_perm=num_perm, seed=1)
    m.update_batch([g.encode("utf-8") for g in sorted(grams)])
    b, r = _bands(threshold, num_perm)
    values = np.asarray(m.hashvalues, dtype=np.uint64)
    return [
        f"t:{i}:{hashlib.blake2b(values[i * r : (i + 1) * r].tobytes(), digest_size=12).hexdigest()}"
        for i in range(b)
    ]


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


# -- images: a perceptual hash, split into bands for exact recall ------------------------------


def image_hash(pixels: Any) -> int | None:
    """The 64-bit pHash of a pixel grid (flat square or 2-D), None when it is no image."""
    import imagehash
    from PIL import Image

    try:
        a = np.asarray(pixels, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    if a.ndim == 1:
        side = round(a.size**0.5)
        if side * side != a.size:
            return None
        a = a.reshape(side, side)
    if a.ndim != 2 or a.size == 0 or not np.isfinite(a).all():
        return None
    span = float(a.max() - a.min()) or 1.0
    grey = ((a - a.min()) / span * 255.0).astype(np.uint8)
    bits = imagehash.phash(Image.fromarray(grey, mode="L")).hash.reshape(-1)
    return int("".join("1" if b else "0" for b in bits), 2)


def image_keys(value: int, max_distance: int) -> list[str]:
    """``max_distance + 1`` bands of the 64 bits: hashes within the distance share one (pigeonhole)."""
    n = min(max_distance + 1, 64)
    edges = [round(64 * k / n) for k in range(n + 1)]
    return [f"i:{k}:{(value >> edges[k]) & ((1 << (edges[k + 1] - edges[k])) - 1):x}" for k in range(n)]


# -- the check ---------------------------------------------------------------------------------


def _text(config: ProjectConfig, payload: dict[str, Any]) -> str | None:
    value = payload.get(config.input_key)
    return value if isinstance(value, str) else None


def check(ctx: Context, uow: UnitOfWork, records: Sequence[Incoming]) -> Found:
    """Each record's original, if it is a near duplicate of an earlier item or of an earlier
    record of the batch; every record's band keys, for :func:`remember`; and, with ``action:
    reuse``, the original's resolved label where it has one."""
    found = _check(ctx, uow, records)
    if ctx.config.duplicates.action == "reuse" and found.matches:
        found.resolved = _resolved_originals(ctx, uow, found)
    return found


def _resolved_originals(ctx: Context, uow: UnitOfWork, found: Found) -> dict[int, Resolution]:
    """The newest resolution of each match's original, for the originals that have one (an
    earlier record of the same batch has none yet)."""
    names = sorted({m.original for m in found.matches.values()})
    items = uow.items.by_external_ids(ctx.project.id, names)
    out: dict[int, Resolution] = {}
    for i, m in found.matches.items():
        item = items.get(m.original)
        resolutions = uow.resolutions.for_item(item.id) if item is not None else []
        if resolutions:
            out[i] = resolutions[-1]
    return out


def _check(ctx: Context, uow: UnitOfWork, records: Sequence[Incoming]) -> Found:
    found = Found(keys=[[] for _ in records])
    found.matches.update(_embeddings(ctx, uow, records))
    dup = ctx.config.duplicates
    text_on = dup.text_threshold is not None and ctx.config.modality is Modality.TEXT
    image_on = dup.image_max_distance is not None and ctx.config.modality is Modality.IMAGE
    if not (text_on or image_on) or not records:
        return found
    sigs: list[Any] = []
    for i, r in enumerate(records):
        if text_on:
            text = _text(ctx.config, r.payload)
            grams = shingles(text, dup.shingle) if text is not None else set()
            sigs.append(grams)
            found.keys[i] = text_keys(grams, float(dup.text_threshold or 1.0), dup.num_perm)
        else:
            h = image_hash(r.payload.get(ctx.config.input_key))
            sigs.append(h)
            found.keys[i] = [] if h is None else image_keys(h, int(dup.image_max_distance or 0))
    stored = uow.duplicate_keys.find(ctx.project.id, [k for keys in found.keys for k in keys])
    candidate_ids = sorted({i for ids in stored.values() for i in ids})
    items = {it.id: it for it in uow.items.get_many(candidate_ids)} if candidate_ids else {}
    earlier: dict[str, list[int]] = {}  # band key → indices of earlier records in this batch
    for i in range(len(records)):
        best: tuple[float, str] | None = None
        for key in found.keys[i]:
            for item_id in stored.get(key, ()):
                item = items.get(item_id)
                if item is not None:
                    other = _signature(ctx.config, item.payload, text_on)
                    best = _better(best, _similar(sigs[i], other, text_on), item.external_id)
            for j in earlier.get(key, ()):
                best = _better(best, _similar(sigs[i], sigs[j], text_on), records[j].external_id)
        limit = dup.text_threshold if text_on else 1.0 - (dup.image_max_distance or 0) / 64
        if best is not None and best[0] >= float(limit or 1.0) and i not in found.matches:
            found.matches[i] = Match(best[1], "text" if text_on else "image", round(best[0], 6))
        for key in found.keys[i]:
            earlier.setdefault(key, []).append(i)
    return found


def _signature(config: ProjectConfig, payload: dict[str, Any], text_on: bool) -> Any:
    if text_on:
        text = _text(config, payload)
        return shingles(text, config.duplicates.shingle) if text is not None else set()
    return image_hash(payload.get(config.input_key))


def _similar(a: Any, b: Any, text_on: bool) -> float:
    if text_on:
        return jaccard(a, b) if a and b else 0.0
    if a is None or b is None:
        return 0.0
    return 1.0 - bin(a ^ b).count("1") / 64


def _better(best: tuple[float, str] | None, score: float, ext: str) -> tuple[float, str]:
    """The higher score; the earlier candidate on ties (candidates come oldest first)."""
    return (score, ext) if best is None or score > best[0] else best


def route(ctx: Context, found: Found, choices: Sequence[RouteChoice]) -> list[RouteChoice]:
    """With ``action: check``, near duplicates go to a cheap check: tier 1, lowest priority,
    reason ``near_duplicate``. With ``action: reuse``, those whose original has a resolved
    label get a task (reason ``near_duplicate_reuse``) that :func:`reuse` closes with that
    label; the others go to the cheap check. Audit draws stay audits."""
    out = list(choices)
    if ctx.config.duplicates.action == "link":
        return out
    for i in found.matches:
        if not out[i].audit:
            reason = REUSE if i in found.resolved else CHECK
            out[i] = replace(out[i], route=Route.REVIEW, tier=1, reason=reason, priority=0.0)
    return out


def required(ctx: Context, choice: RouteChoice) -> int:
    """Annotations a new task needs: one for a near duplicate's cheap check, else its tier's."""
    if choice.reason in (CHECK, REUSE):
        return 1
    return ctx.config.tier(choice.tier or 1).required_annotations


def reuse(
    ctx: Context,
    uow: UnitOfWork,
    found: Found,
    choices: Sequence[RouteChoice],
    item_ids: Sequence[int],
    actor: str,
) -> int:
    """Resolve each near duplicate routed ``near_duplicate_reuse`` with its original's label:
    a resolution with method ``reused`` and no annotations, its task closed, an
    ``item.resolved`` event naming the original (``item_ids[i]`` is record ``i``'s item).
    How many were resolved so."""
    done = 0
    for i, original in sorted(found.resolved.items()):
        if choices[i].reason != REUSE:
            continue  # an audit draw: labelled independently
        item_id = item_ids[i]
        task = next(t for t in uow.tasks.for_item(item_id) if t.status is TaskStatus.OPEN)
        resolution = uow.resolutions.add(item_id, task.id, original.label, "reused", original.agreement, 0)
        uow.tasks.set_status(task.id, TaskStatus.RESOLVED, ctx.clock())
        ctx.event(
            uow,
            actor,
            "item.resolved",
            ("item", item_id),
            task_id=task.id,
            label=original.label,
            method="reused",
            agreement=original.agreement,
            resolution_id=resolution.id,
            reused_from={"external_id": found.matches[i].original, "resolution_id": original.id},
        )
        done += 1
    return done


def remember(ctx: Context, uow: UnitOfWork, found: Found, item_ids: Sequence[int]) -> None:
    """Index the new items' band keys (``item_ids[i]`` is record ``i``'s item)."""
    rows = [(k, item_id) for keys, item_id in zip(found.keys, item_ids, strict=True) for k in keys]
    if rows:
        uow.duplicate_keys.add_many(ctx.project.id, rows)


def _embeddings(ctx: Context, uow: UnitOfWork, records: Sequence[Incoming]) -> dict[int, Match]:
    """Records whose embedding's cosine similarity to an earlier item's (or an earlier record's
    in the batch) reaches ``embedding.duplicate_threshold``. Exact, over the project's stored
    embeddings (issue 13's check, moved here)."""
    threshold = ctx.config.embedding.duplicate_threshold
    rows = [i for i, r in enumerate(records) if r.embedding is not None]
    if threshold is None or not rows:
        return {}
    stored = uow.embeddings.of_project(ctx.project.id)
    names = {i.id: i.external_id for i in uow.items.get_many(list(stored))}
    keys = [names[i] for i in stored] + [records[i].external_id for i in rows]
    vectors = np.asarray([*stored.values(), *(records[i].embedding for i in rows)], dtype=np.float64)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    found: dict[int, Match] = {}
    for k, i in enumerate(rows):
        at = len(stored) + k
        if at == 0:
            continue
        sims = unit[:at] @ unit[at]
        j = int(sims.argmax())
        if sims[j] >= threshold:
            found[i] = Match(keys[j], "embedding", round(float(sims[j]), 6))
    return found
