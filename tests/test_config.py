"""Project configuration: valid files load, broken ones name every bad field."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest

from loopwright.config import Modality, ProjectConfig
from loopwright.errors import Invalid


def test_shipped_example_loads() -> None:
    cfg = ProjectConfig.load(Path(str(files("loopwright") / "examples" / "digits.yaml")))
    assert cfg.labels == [str(d) for d in range(10)]
    assert cfg.modality is Modality.IMAGE and cfg.input_key == "pixels"
    assert [t.required_annotations for t in cfg.tiers] == [1, 1, 1]  # one answer; escalate when unsure
    audit = (
        cfg.routing
    )  # adaptive audit by two experts (a second opinion on a contradiction), certified at ε = 2 %, δ = 5 %
    assert (
        audit.audit_rate,
        audit.audit_target,
        audit.audit_floor,
        audit.audit_tier,
        audit.audit_answers,
    ) == (
        0.5,
        400,
        0.03,
        3,
        3,
    )
    assert audit.certify is not None and (audit.certify.epsilon, audit.certify.delta) == (0.02, 0.05)
    assert cfg.top_tier == 3


def test_toml_and_python_construction_agree(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        'name = "spam"\nlabels = ["ham", "spam"]\nmodality = "text"\n[routing]\naccept_threshold = 0.8\n'
    )
    from_file = ProjectConfig.load(path)
    in_python = ProjectConfig(name="spam", labels=["ham", "spam"], modality=Modality.TEXT)
    assert from_file.routing.accept_threshold == 0.8
    assert from_file.model_copy(update={"routing": in_python.routing}) == in_python
    assert in_python.input_key == "text"


def test_broken_config_names_each_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: 'has space'\nlabels: [a]\nmodality: video\nrouting:\n  accept_threshold: 1.5\n  colour: red\n"
    )
    with pytest.raises(Invalid) as info:
        ProjectConfig.load(path)
    fields = {f for f, _ in info.value.errors}
    assert fields == {"name", "labels", "modality", "routing.accept_threshold", "routing.colour"}
    assert "routing.accept_threshold" in str(info.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"labels": ["a", "a"]}, "unique"),
        ({"tiers": [{"tier": 2, "name": "x"}]}, "without gaps"),
        ({"routing": {"bands": [{"min_confidence": 0.0, "tier": 5}]}}, "undefined tier"),
        ({"routing": {"high_stakes_labels": ["zebra"]}}, "not in labels"),
        ({"routing": {"audit_tier": 4}}, r"undefined tier\(s\) \[4\]"),
        ({"routing": {"certify": {"epsilon": 1.5}}}, "routing.certify.epsilon"),
        ({"gold": {"min_accuracy": 0.9, "expected_accuracy": 0.8}}, "below expected_accuracy"),
    ],
)
def test_inconsistent_config_is_refused(data: dict[str, object], message: str) -> None:
    with pytest.raises(Invalid, match=message):
        ProjectConfig.from_dict({"name": "p", "labels": ["a", "b"], **data})


@pytest.mark.parametrize(
    ("text", "message"), [("name: [unclosed", "not valid yaml"), ("- a\n- b\n", "mapping at the top level")]
)
def test_unparseable_config(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(Invalid, match=message):
        ProjectConfig.load(path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="cannot read"):
        ProjectConfig.load(tmp_path / "nope.yaml")


def test_an_unknown_tier_is_named() -> None:
    config = ProjectConfig.from_dict({"name": "p", "labels": ["a", "b"]})
    assert config.tier(2).name == "uncertain"
    with pytest.raises(Invalid, match=r"tier 9 is not a tier of this project; its tiers are \[1, 2, 3\]"):
        config.tier(9)
