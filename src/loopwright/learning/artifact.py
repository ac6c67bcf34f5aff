"""Model artifacts serialised with skops (no arbitrary code runs on load), checked on the way in.

skops loads scikit-learn, numpy and scipy types by itself; a type of your own loads only when
the project trusts it by name (``model.trusted_types``), in every process that opens it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loopwright.errors import Invalid

_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")
_TRUSTED_NAMES = (
    "loopwright.learning.estimators.CallableModel",  # a wrapper; its function is checked
    "loopwright.learning.svm.ImageSVC",  # the image default: scikit-learn's SVC, data only
)


def dump_model(model: Any) -> bytes:
    from skops import io as sio  # on use: keeps start-up light

    return bytes(sio.dumps(model))


def untrusted_types(blob: bytes, trusted: Sequence[str] = ()) -> list[str]:
    """The types in ``blob`` that neither loopwright nor ``trusted`` trusts, sorted."""
    allowed = set(_TRUSTED_NAMES) | set(trusted)
    from skops import io as sio  # on use: keeps start-up light

    found = sio.get_untrusted_types(data=blob)
    return sorted(t for t in found if not t.startswith(_TRUSTED_PREFIXES) and t not in allowed)


def load_model(blob: bytes, trusted: Sequence[str] = ()) -> Any:
    """Load an artifact, trusting scikit-learn, numpy and scipy types, and ``trusted`` by name."""
    if refused := untrusted_types(blob, trusted):
        raise Invalid(
            f"model artifact contains types loopwright will not load: {refused}; "
            "trust them by name in the project config under model.trusted_types"
        )
    from skops import io as sio  # on use: keeps start-up light

    return sio.loads(blob, trusted=sio.get_untrusted_types(data=blob))


def persistable(model: Any, trusted: Sequence[str] = ()) -> bytes:
    """``model``'s artifact if every other process could load it; :class:`Invalid` in one line
    saying why not and how to trust it otherwise."""
    try:
        blob = dump_model(model)
    except Exception as exc:  # skops cannot represent it
        raise Invalid(
            f"the model cannot be stored ({type(exc).__name__}: {exc}); "
            "pass persist=False to serve it in this process only"
        ) from None
    refused = untrusted_types(blob, trusted)
    local = [t for t in refused if t.startswith("__main__.") or "<" in t]
    if local:
        raise Invalid(
            f"the model holds {local}, which no other process can import: define it at module level "
            "in an importable module and trust it under model.trusted_types, or pass persist=False "
            "to serve it in this process only"
        )
    if refused:
        raise Invalid(
            f"the model holds types the project does not trust: {refused}; add them to the project "
            "config under model.trusted_types (or pass persist=False to serve it in this process only)"
        )
    try:
        load_model(blob, trusted)
    except Exception as exc:
        raise Invalid(
            f"the model was stored but does not load back ({type(exc).__name__}: {exc}); "
            "pass persist=False to serve it in this process only"
        ) from None
    return blob
