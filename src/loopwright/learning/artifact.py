"""Model artifacts serialised with skops (no arbitrary code runs on load), checked on the way in."""

from __future__ import annotations

from typing import Any

from skops import io as sio

from loopwright.errors import Invalid

_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")


def dump_model(model: Any) -> bytes:
    return bytes(sio.dumps(model))


def load_model(blob: bytes) -> Any:
    """Load an artifact, trusting only scikit-learn, numpy and scipy types."""
    untrusted = sio.get_untrusted_types(data=blob)
    refused = [t for t in untrusted if not t.startswith(_TRUSTED_PREFIXES)]
    if refused:
        raise Invalid(f"model artifact contains types loopwright will not load: {refused}")
    return sio.loads(blob, trusted=untrusted)
