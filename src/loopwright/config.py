"""Declarative project configuration: one YAML/TOML file, validated by Pydantic, also built in Python."""

from __future__ import annotations

import string
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from loopwright.domain import GateRule
from loopwright.errors import Invalid


class Modality(StrEnum):
    TABULAR = "tabular"
    IMAGE = "image"
    TEXT = "text"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_DOTTED = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"  # module.Qualname


class ModelConfig(_Strict):
    """Which estimator to train. ``kind="default"`` picks the modality's scikit-learn pipeline;
    ``kind="http"`` scores with a served model (``url``, ``protocol`` and the fields below)."""

    kind: Literal["default", "external", "http"] = Field(
        "default",
        description="default: loopwright trains the modality's scikit-learn pipeline; external: "
        "your pipeline trains, predictions arrive with the records or are uploaded, and "
        "maybe_retrain only emits model.retrain_due; http: a served model scores (url, protocol)",
    )
    params: dict[str, Any] = Field(default_factory=dict)
    trusted_types: list[Annotated[str, Field(pattern=_DOTTED)]] = Field(
        default_factory=list,
        description="types of your own (module.Class) a model artifact may hold; every process "
        "that opens the project loads them (Loop.use_model refuses a model with others)",
    )
    # kind http: a served model (loopwright.integrations.serving). An operator configures the
    # URL, so the webhook SSRF rules (no private addresses) do not apply: model servers
    # usually live on the private network. Only the scheme is checked.
    url: str | None = Field(None, description="kind http: the inference server's base URL (http/https)")
    protocol: Literal["open-inference", "mlflow"] = Field(
        "open-inference", description="kind http: Open Inference (KServe v2, MLServer, Triton) or MLflow"
    )
    name: str | None = Field(
        None, description="kind http: the served model's name (open-inference: required)"
    )
    version: str | None = Field(None, description="kind http: the served model version to call, if pinned")
    timeout_s: float = Field(
        10.0, gt=0.0, le=600.0, description="kind http: deadline per request, retries included"
    )
    connect_timeout_s: float = Field(2.0, gt=0.0, le=60.0, description="kind http: TCP connect timeout")
    retries: int = Field(2, ge=0, le=10, description="kind http: retries on connection errors, 5xx and 429")
    batch_size: int = Field(256, ge=1, le=100_000, description="kind http: payloads per request at most")
    labels: list[str] | None = Field(
        None, description="kind http: the label of each output column (default: the model's metadata)"
    )
    output: str | None = Field(
        None,
        description="kind http, open-inference: the probability output to ask for (MLServer "
        "scikit-learn: predict_proba); default: the first output",
    )
    input_name: str = Field(
        "input-0", min_length=1, description="kind http, open-inference: input tensor name"
    )

    @model_validator(mode="after")
    def _served(self) -> Self:
        if self.kind != "http":
            if self.url is not None:
                raise ValueError("url is only used with kind: http")
            return self
        if not self.url:
            raise ValueError("kind http needs url: the inference server's base URL")
        scheme, sep, rest = self.url.partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not rest.split("/")[0]:
            raise ValueError(f"url {self.url!r} must be an http:// or https:// URL with a host")
        if self.protocol == "open-inference" and not self.name:
            raise ValueError("protocol open-inference needs name: the model name in /v2/models/{name}")
        if self.labels is not None and len(set(self.labels)) != len(self.labels):
            raise ValueError("model labels must be unique")
        return self

    @property
    def lives_elsewhere(self) -> bool:
        """``external`` or ``http``: trained outside loopwright, which never trains it."""
        return self.kind in ("external", "http")


class TierBand(_Strict):
    """Predictions with confidence ≥ ``min_confidence`` (and below the accept threshold) go here."""

    min_confidence: float = Field(ge=0.0, le=1.0)
    tier: int = Field(ge=1)


class CertifyConfig(_Strict):
    """Certify the auto-accept threshold: auto-accepted error ≤ epsilon with probability ≥ 1 - delta."""

    epsilon: float = Field(0.02, gt=0.0, lt=1.0, description="the error bound on auto-accepted items")
    delta: float = Field(0.05, gt=0.0, lt=1.0, description="the risk of the bound being wrong")
    min_evidence: int | None = Field(None, ge=1, description="audited items needed at a threshold")


class RoutingConfig(_Strict):
    accept_threshold: float = Field(
        0.9, ge=0.0, le=1.0, description="fixed auto-accept threshold, unless `certify` is set"
    )
    audit_rate: float = Field(
        0.05, ge=0.0, le=1.0, description="uniform share of items reviewed as an unbiased audit"
    )
    audit_target: int | None = Field(
        None,
        ge=1,
        description="adaptive audit: the rate falls from audit_rate toward audit_floor as the audited "
        "items since the last drift approach this many (None: a fixed audit_rate)",
    )
    audit_floor: float = Field(0.0, ge=0.0, le=1.0, description="adaptive audit: the lowest rate")
    feedback_tier: int | None = Field(
        None, ge=1, description="tier for items an end user reported or corrected (default: fallback_tier)"
    )
    audit_tier: int | None = Field(
        None, ge=1, description="tier for audited items (default: their confidence band's)"
    )
    audit_answers: int = Field(
        1,
        ge=1,
        le=5,
        description="most answers an audited item takes: a first answer that contradicts the model's "
        "prediction, or answers that disagree, ask one more, as does a lone answer a later champion "
        "contradicts where its certificate looks (the audit tier needs that many annotators)",
    )
    certify: CertifyConfig | None = Field(
        None, description="derive the threshold from the audit instead of accept_threshold"
    )
    bands: list[TierBand] = Field(
        default_factory=lambda: [
            TierBand(min_confidence=0.5, tier=1),
            TierBand(min_confidence=0.0, tier=2),
        ]
    )
    fallback_tier: int = Field(1, ge=1, description="tier for items without a usable prediction")
    high_stakes_labels: list[str] = Field(default_factory=list)
    high_stakes_tier: int = Field(3, ge=1)

    @property
    def audit_tiers(self) -> frozenset[int]:
        """The tiers whose queues hold audits: ``audit_tier``, else every band's (none without audits)."""
        if self.audit_rate == 0.0:
            return frozenset()
        return frozenset({self.audit_tier} if self.audit_tier else {b.tier for b in self.bands})

    @model_validator(mode="after")
    def _bands_cover_zero(self) -> Self:
        if self.bands and min(b.min_confidence for b in self.bands) > 0.0:
            raise ValueError("the lowest band must start at min_confidence 0.0")
        return self


class TierConfig(_Strict):
    tier: int = Field(ge=1)
    name: str
    required_annotations: int = Field(1, ge=1, le=50)
    lease_seconds: int = Field(300, ge=5)


def _default_tiers() -> list[TierConfig]:
    return [
        TierConfig(tier=1, name="bulk", required_annotations=1),  # one person can run the loop
        TierConfig(tier=2, name="uncertain", required_annotations=1),
        TierConfig(tier=3, name="expert", required_annotations=1),
    ]


class ConsensusConfig(_Strict):
    """How a complete task becomes a label, and when it escalates instead."""

    method: Literal["majority", "dawid_skene", "one_coin_dawid_skene"] = "majority"
    min_agreement: float = Field(0.5, gt=0.0, le=1.0, description="majority: below this, escalate a tier")
    min_posterior: float = Field(
        0.8, ge=0.0, le=1.0, description="dawid_skene: below this posterior, escalate a tier"
    )
    model_as_annotator: bool = Field(
        False, description="dawid_skene: the model's predicted label is one more (weak) annotator"
    )


class GoldConfig(_Strict):
    """Gold (honeypot) tasks mixed into review, and the accuracy an annotator must keep."""

    rate: float = Field(0.0, ge=0.0, le=1.0, description="share of claims that get a gold task")
    onboarding: int = Field(0, ge=0, description="gold tasks every annotator answers first")
    min_accuracy: float = Field(0.7, gt=0.0, lt=1.0, description="an accuracy this low pauses")
    expected_accuracy: float = Field(0.9, gt=0.0, lt=1.0, description="what a careful annotator keeps")
    min_answers: int = Field(5, ge=1, description="gold answers needed before pausing")
    alpha: float = Field(
        0.05, gt=0.0, lt=1.0, description="pause when the likelihood ratio for min_accuracy reaches 1/alpha"
    )
    from_audits: bool = Field(
        False,
        description="the loop makes gold by itself of the audits the champion gets wrong (unanimous, "
        "two or more answers), whenever new audit answers or a new champion arrive",
    )

    @model_validator(mode="after")
    def _ordered(self) -> GoldConfig:
        if self.min_accuracy >= self.expected_accuracy:
            raise ValueError("min_accuracy must be below expected_accuracy")
        return self


class FatigueConfig(_Strict):
    """Caps on an annotator's work, and rotation away from long runs of one suggested label or
    one source (an item metadata field)."""

    max_per_hour: int | None = Field(None, ge=1)
    max_per_session: int | None = Field(None, ge=1)
    max_same_label_run: int | None = Field(
        None, ge=1, description="after this many in a row with one suggested label, prefer another"
    )
    max_same_source_run: int | None = Field(
        None, ge=1, description="after this many in a row from one source, prefer another source"
    )
    source_key: str = Field("source", min_length=1, description="item metadata key naming the source")


class RetrainConfig(_Strict):
    every_n_labels: int = Field(100, ge=1, description="retrain after this many new resolved labels")
    every_hours: float | None = Field(
        None,
        gt=0.0,
        description="also retrain this long after the last run, if labels changed",
    )
    min_labels: int = Field(20, ge=2)
    eval_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="share of items frozen for the gate")
    seed: int = 0
    processes: int = Field(
        1,
        ge=1,
        le=16,
        description="worker processes that fit a drift bridge's draws side by side: the same models, "
        "sooner where cores are free (an estimator that cannot be pickled is fitted here instead)",
    )


class GateConfig(_Strict):
    """How a challenger is judged against the champion on the frozen evaluation split."""

    rule: GateRule = GateRule.NOT_SIGNIFICANTLY_WORSE
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    min_eval_items: int = Field(10, ge=1)
    max_ece_increase: float = Field(
        0.1, gt=0.0, le=1.0, description="fail when the challenger's calibration error grows more than this"
    )


class DriftConfig(_Strict):
    """Drift monitoring: recent items against what the champion was trained on."""

    window: int = Field(200, ge=30, description="the newest items compared with the training items")
    alpha: float = Field(
        0.05, gt=0.0, lt=1.0,
        description="the verdict's false-alarm level: alpha / 2 for the corrected per-feature tests, "
        "alpha / 2 for the domain classifier (Bonferroni)",
    )  # fmt: skip
    auc_threshold: float = Field(
        0.6, gt=0.5, le=1.0, description="domain-classifier AUC that counts, when also significant"
    )
    review_sample: int = Field(50, ge=0, description="items of a drifted window pulled into review")
    check_on_ingest: bool = Field(
        False, description="test each batch against the window before it; on drift the batch goes to review"
    )
    confirm: bool = Field(
        True, description="an alarm on ingest that the next batch does not confirm (against the window "
        "before the alarm) is retracted: the evidence from before it counts again",
    )  # fmt: skip
    learn_since_drift: bool = Field(
        False, description="after drift, train and gate on items from the drifted window on, once enough"
    )
    bridge_copies: int = Field(
        0, ge=0, le=8,
        description="after drift (with learn_since_drift), also train on this many copies of each "
        "label from before the drift, each moved one pixel to a different neighbouring position "
        "(images only; the newest 1,000), until the labels since the drift outnumber them or reach "
        "600; three draws of the copies are fitted and averaged; 0: the old labels are dropped",
    )  # fmt: skip

    @model_validator(mode="after")
    def _bridge_after_drift(self) -> Self:
        if self.bridge_copies and not self.learn_since_drift:
            raise ValueError("drift.bridge_copies bridges a drift learned from: set learn_since_drift: true")
        return self


StrategyName = Literal["auto", "random", "least-confidence", "margin", "entropy", "qbc", "kcenter", "hybrid"]


class ActiveConfig(_Strict):
    """How the review queue is ordered: the active-learning strategy ranks each batch's
    uncertain items (least-confidence keeps the router's 1 - confidence priority; auto, the
    default, orders by margin, the anchor of the bandit ``loopwright simulate`` runs)."""

    strategy: StrategyName = "auto"


PiiKind = Literal["URL_CREDENTIALS", "EMAIL", "IBAN", "CARD", "SSN", "IP", "PHONE"]


class PrivacyConfig(_Strict):
    """Scrub personal data from payload text before annotators see it."""

    fields: list[str] = Field(
        default_factory=list, description="dotted payload paths of text to scrub, e.g. text or meta.note"
    )
    kinds: list[PiiKind] | None = Field(None, description="what to scrub (default: every kind)")
    keep_original: bool = Field(
        False,
        description="keep the original in the store (the model sees it; annotators never do); "
        "false scrubs on ingest and stores only the scrubbed text",
    )


class EmbeddingConfig(_Strict):
    """Embeddings that records carry (``"embedding": [floats]``): active-learning diversity, the
    drift domain classifier and near-duplicate checks use them instead of the payload."""

    dim: int | None = Field(None, ge=1, description="their length (default: fixed by the first one seen)")
    duplicate_threshold: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="cosine similarity at which a new item is linked to an earlier one as a near "
        "duplicate (metadata duplicate_of); unset: no check",
    )


class NormalizeText(_Strict):
    """Unicode normalisation, whitespace collapsed and trimmed, optionally lower case."""

    step: Literal["normalize_text"]
    fields: list[str] | None = Field(None, description="payload fields (default: the input field)")
    form: Literal["NFC", "NFKC", "NFD", "NFKD"] = "NFKC"
    collapse_whitespace: bool = True
    lowercase: bool = False


class DropEmpty(_Strict):
    """Reject records whose payload fields are missing, blank or empty (reason ``empty``)."""

    step: Literal["drop_empty"]
    fields: list[str] | None = Field(None, description="payload fields (default: the input or features)")


class ResizeImage(_Strict):
    """Resize the pixel grid (Pillow, bilinear) to ``height`` x ``width``; a flat input is read
    as a square unless ``source_shape`` says otherwise. Unreadable pixels reject the record."""

    step: Literal["resize_image"]
    height: int = Field(ge=1, le=4096)
    width: int = Field(ge=1, le=4096)
    source_shape: tuple[int, int] | None = Field(None, description="(height, width) of a flat input")
    flatten: bool = Field(True, description="store the result as a flat list, as the model reads it")


class NormalizeImage(_Strict):
    """Scale pixel values into [0, 1]: divide by ``scale`` and clip."""

    step: Literal["normalize_image"]
    scale: float = Field(255.0, gt=0.0)


PreprocessStep = Annotated[
    NormalizeText | DropEmpty | ResizeImage | NormalizeImage, Field(discriminator="step")
]


class MediaConfig(_Strict):
    """Images that items reference (``{"image": "path or URL"}``) instead of carrying pixels:
    where they may come from, and the features the built-in model reads from them."""

    roots: list[str] = Field(
        default_factory=list,
        description="absolute directories and URL prefixes (https://host/path/, s3://bucket/prefix/) "
        "images may come from; a reference anywhere else is refused (none: every reference is refused); "
        "a relative reference lies under the first",
    )
    features: Literal["thumbnail", "hog"] = Field(
        "thumbnail",
        description="thumbnail: the greyscale image shrunk to size x size (explanations map onto it); "
        "hog: scikit-image HOG of that square (the images extra)",
    )
    size: int = Field(16, ge=8, le=256, description="side of the greyscale square the features read")
    histogram: bool = Field(False, description="append a 16-bin histogram per colour channel")
    max_bytes: int = Field(50_000_000, ge=1, description="largest image file read")
    max_pixels: int = Field(100_000_000, ge=1, description="largest image decoded (decompression bombs)")

    @model_validator(mode="after")
    def _roots(self) -> Self:
        for root in self.roots:
            scheme, sep, rest = root.partition("://")
            if sep and scheme.lower() != "file" and not rest.split("/")[0]:
                raise ValueError(f"media root {root!r} needs a host or bucket after {scheme}://")
            if (not sep or scheme.lower() == "file") and not Path(root.removeprefix("file://")).is_absolute():
                raise ValueError(f"media root {root!r} must be an absolute directory or a URL prefix")
        return self


class DuplicatesConfig(_Strict):
    """Near-duplicate detection on ingest (text: MinHash LSH; images: perceptual hash;
    embeddings: ``embedding.duplicate_threshold``). A near duplicate is linked to its original
    (metadata ``duplicate_of``); ``action: check`` also sends it to a cheap review, ``action:
    reuse`` gives it the original's resolved label when there is one."""

    text_threshold: float | None = Field(
        None, gt=0.0, le=1.0, description="Jaccard similarity of word shingles; unset: no text check"
    )
    shingle: int = Field(3, ge=1, le=20, description="words per shingle")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations")
    image_max_distance: int | None = Field(
        None, ge=0, le=32, description="perceptual-hash Hamming distance (of 64 bits); unset: no image check"
    )
    action: Literal["link", "check", "reuse"] = Field(
        "link",
        description="link: record duplicate_of only; check: also route it to a one-annotation "
        "check at tier 1 with low priority (reason near_duplicate); reuse: give it the original's "
        "resolved label (resolution method reused, linked in lineage), or the check when the "
        "original has none yet",
    )


def prompt_fields(template: str) -> list[str]:
    """The placeholders of a prompt template, in order; ValueError for positional (``{}``),
    attribute or index placeholders (``{a.b}``, ``{a[0]}``) and for unbalanced braces."""
    names = []
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(f"prompt placeholder {{{name}}} must be a plain name such as {{text}}")
        names.append(name)
    return names


class ModelAnnotatorConfig(_Strict):
    """A weak annotator that is a model: an OpenAI-compatible chat-completions endpoint
    (``kind: chat``) or a registered model version (``kind: model_version``). Its answers join
    Dawid-Skene consensus with an estimated skill and are shown to reviewers (``prelabel``);
    they never count toward a task's required annotations, so they never resolve an item alone."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
    kind: Literal["chat", "model_version"]
    url: str | None = Field(None, description="chat: the API base URL; POST {url}/chat/completions")
    model: str | None = Field(None, min_length=1, description="chat: the model name sent to the endpoint")
    prompt: str | None = Field(
        None,
        min_length=1,
        description="chat: the user message; placeholders {labels}, {payload} (JSON), the input "
        "field (e.g. {text}) and, for tabular projects, each feature",
    )
    system: str | None = Field(None, description="chat: an optional system message")
    labels: list[str] | None = Field(None, description="chat: the labels it may answer (default: all)")
    api_key_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="chat: the environment variable holding the API key (never the key itself)",
    )
    timeout_s: float = Field(10.0, gt=0.0, le=120.0, description="chat: seconds per call, in all")
    batch_budget_s: float = Field(
        30.0, gt=0.0, le=3600.0, description="chat: seconds per ingest batch; items after it are not asked"
    )
    version: int | None = Field(None, ge=1, description="model_version: the version whose label counts")
    prelabel: bool = Field(True, description="show its answer to reviewers as a pre-label")

    @model_validator(mode="after")
    def _complete(self) -> Self:
        chat_only = {"url": self.url, "model": self.model, "prompt": self.prompt}
        if self.kind == "model_version":
            if self.version is None:
                raise ValueError(f"model annotator {self.name!r}: kind model_version needs version")
            if given := [k for k, v in chat_only.items() if v is not None]:
                raise ValueError(f"model annotator {self.name!r}: {given} only apply to kind chat")
            return self
        if missing := [k for k, v in chat_only.items() if v is None]:
            raise ValueError(f"model annotator {self.name!r}: kind chat needs {missing}")
        scheme, sep, rest = str(self.url).partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not rest.split("/")[0]:
            raise ValueError(f"model annotator {self.name!r}: url must be http:// or https:// with a host")
        if self.version is not None:
            raise ValueError(f"model annotator {self.name!r}: version only applies to kind model_version")
        prompt_fields(str(self.prompt))
        return self


class LeaderboardConfig(_Strict):
    """Gamified annotation: streaks and an accuracy-weighted leaderboard per tier
    (``loopwright.loop.leaderboard``). Leads and admins always see it; annotators only if on."""

    visible_to_annotators: bool = Field(False, description="show the leaderboard to annotators and experts")


class RubricConfig(_Strict):
    """task rubric: the labels are the rubric's ratings; may a reviewer add a corrected answer?"""

    corrections: bool = Field(True, description="allow a free-text correction with a rating")


class ProjectConfig(_Strict):
    """Everything that defines a project; see ``examples/digits.yaml``."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
    labels: list[str] = Field(min_length=2)
    modality: Modality = Modality.TABULAR
    input_field: str | None = Field(
        None, description="payload field holding the input: pixels (image) or text (text)"
    )
    features: list[str] | None = Field(None, description="tabular: payload fields, in order")
    model: ModelConfig = Field(default_factory=ModelConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    tiers: list[TierConfig] = Field(default_factory=_default_tiers)
    consensus: ConsensusConfig = Field(default_factory=ConsensusConfig)
    gold: GoldConfig = Field(default_factory=GoldConfig)
    fatigue: FatigueConfig = Field(default_factory=FatigueConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    active: ActiveConfig = Field(default_factory=ActiveConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    preprocess: list[PreprocessStep] = Field(
        default_factory=list, description="steps applied to each payload on ingest, in order"
    )
    duplicates: DuplicatesConfig = Field(default_factory=DuplicatesConfig)
    media: MediaConfig = Field(default_factory=MediaConfig)
    model_annotators: list[ModelAnnotatorConfig] = Field(
        default_factory=list, description="weak annotators that are models (LLM judges, model versions)"
    )
    guidelines: str = Field(
        "", description="labelling guidelines shown to annotators (plain text; '#' headings, '-' lists)"
    )
    task: Literal["single", "multilabel", "rubric", "preference", "spans", "boxes"] = Field(
        "single",
        description="what an answer is: single (one of labels), multilabel (a set of labels), rubric "
        "(a rating of a conversation's answer, one of labels), preference (A, B or tie between "
        "two answers; labels must be [A, B, tie]; rubric and preference items are conversations), "
        "spans (labelled character spans of a text) or boxes (labelled boxes on an image)",
    )
    rubric: RubricConfig = Field(default_factory=lambda: RubricConfig())
    leaderboard: LeaderboardConfig = Field(default_factory=LeaderboardConfig)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("labels must be unique")
        tiers = [t.tier for t in self.tiers]
        if not tiers or sorted(tiers) != list(range(1, len(tiers) + 1)):
            raise ValueError("tiers must be numbered 1, 2, … without gaps")
        wanted = {b.tier for b in self.routing.bands} | {self.routing.fallback_tier}
        if self.routing.high_stakes_labels:
            wanted.add(self.routing.high_stakes_tier)
        for extra in (self.routing.audit_tier, self.routing.feedback_tier):
            if extra is not None:
                wanted.add(extra)
        if missing := sorted(wanted - set(tiers)):
            raise ValueError(f"routing sends items to undefined tier(s) {missing}")
        if unknown := sorted(set(self.routing.high_stakes_labels) - set(self.labels)):
            raise ValueError(f"high_stakes_labels not in labels: {unknown}")
        if unknown := sorted(set(self.model.labels or ()) - set(self.labels)):
            raise ValueError(f"model.labels not in labels: {unknown}")
        if self.task == "preference" and self.labels != ["A", "B", "tie"]:
            raise ValueError("task preference needs labels: [A, B, tie]")
        if self.drift.bridge_copies and (self.modality is not Modality.IMAGE or self.task != "single"):
            raise ValueError(
                "drift.bridge_copies moves images by whole pixels: it needs modality image and task "
                "single; set it to 0"
            )
        if self.gold.from_audits:
            self._audits_make_gold()
        if self.task in ("spans", "boxes") and self.consensus.method != "majority":
            raise ValueError(
                f"task {self.task} consolidates answers with its own structured vote: "
                "consensus.method must be majority"
            )
        return self

    def _audits_make_gold(self) -> None:
        """``gold.from_audits`` needs a model loopwright runs, audits answered twice or more and
        a tier that sees the model's suggestion."""
        routing, why = self.routing, "gold.from_audits makes gold of the audits the champion gets wrong"
        if self.model.lives_elsewhere:
            raise ValueError(f"{why}: it needs a model loopwright runs, not model.kind {self.model.kind}")
        if not routing.audit_tiers:
            raise ValueError(f"{why}: set routing.audit_rate above 0")
        once = all(t.required_annotations < 2 for t in self.tiers if t.tier in routing.audit_tiers)
        if once and routing.audit_answers < 2:
            raise ValueError(f"{why} when two or more answers agree: set routing.audit_answers to 2 or more")
        if not {t.tier for t in self.tiers} - routing.audit_tiers:
            raise ValueError(f"{why}: it needs a tier that takes no audits, where gold shows the suggestion")

    @model_validator(mode="after")
    def _annotators_fit(self) -> Self:
        names = [a.name for a in self.model_annotators]
        if len(set(names)) != len(names):
            raise ValueError("model_annotators names must be unique")
        known = {"labels", "payload", *(self.features if self.features is not None else [self.input_key])}
        for a in self.model_annotators:
            if unknown := sorted(set(a.labels or ()) - set(self.labels)):
                raise ValueError(f"model annotator {a.name!r}: labels not in the project's labels: {unknown}")
            if unknown := sorted(set(prompt_fields(a.prompt or "")) - known):
                raise ValueError(
                    f"model annotator {a.name!r}: unknown prompt placeholder(s) {unknown}; "
                    f"known: {sorted(known)}"
                )
        return self

    def tier(self, number: int) -> TierConfig:
        """The tier numbered ``number``; Invalid naming the project's tiers otherwise."""
        for t in self.tiers:
            if t.tier == number:
                return t
        raise Invalid(
            f"tier {number} is not a tier of this project; its tiers are {[t.tier for t in self.tiers]}"
        )

    @property
    def top_tier(self) -> int:
        return max(t.tier for t in self.tiers)

    @property
    def input_key(self) -> str:
        """The payload field the model reads (image and text modalities)."""
        default = {Modality.IMAGE: "pixels", Modality.TEXT: "text"}.get(self.modality, "features")
        return self.input_field or default

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProjectConfig:
        """Validate a mapping; raise :class:`Invalid` naming every bad field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            from loopwright.config_hints import describe  # "did you mean" for keys and values

            errors = [describe(cls, e) for e in exc.errors()]
            raise Invalid("invalid project configuration", errors) from None

    @classmethod
    def load(cls, path: str | Path) -> ProjectConfig:
        """Read a ``.yaml``/``.yml`` or ``.toml`` file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise Invalid(f"cannot read config file {path}: {exc.strerror}") from None
        import yaml  # on use: keeps start-up light

        try:
            data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
        except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
            raise Invalid(f"config file {path} is not valid {path.suffix.lstrip('.')}: {exc}") from None
        if not isinstance(data, dict):
            raise Invalid(f"config file {path} must hold a mapping at the top level")
        return cls.from_dict(data)
