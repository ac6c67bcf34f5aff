"""The curated public API stays curated."""

from __future__ import annotations

import loopwright


def test_all_is_sorted_and_importable() -> None:
    assert loopwright.__all__ == sorted(loopwright.__all__)
    for name in loopwright.__all__:
        assert getattr(loopwright, name) is not None, name


def test_errors_have_stable_codes() -> None:
    codes = {
        loopwright.NotFound: "not_found",
        loopwright.Conflict: "conflict",
        loopwright.LeaseExpired: "lease_expired",
        loopwright.Invalid: "invalid",
        loopwright.UnknownLabel: "unknown_label",
        loopwright.NotFitted: "not_fitted",
        loopwright.StoreUnavailable: "store_unavailable",
    }
    for cls, code in codes.items():
        assert issubclass(cls, loopwright.LoopwrightError) and cls.code == code


def test_library_adds_only_a_null_handler() -> None:
    import logging

    handlers = logging.getLogger("loopwright").handlers
    assert [type(h) for h in handlers] == [logging.NullHandler]
