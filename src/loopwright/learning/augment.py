"""Seeded image augmentation: small affine transforms and noise, each one recorded.

Every augmented image comes with the transform that made it (rotation, scale, shift, noise
level and the seed of the noise), so it can be marked ``synthetic`` with its source item in
lineage and reproduced exactly. scipy is imported only when an image is transformed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray


def draw_transform(rng: np.random.Generator, strength: float = 1.0) -> dict[str, float | int]:
    """A random small transform: rotation ±10°, scale 0.9 to 1.1, shift ±0.6 px, noise sd ≤ 0.8 ink
    units (of 16), all times ``strength``; ``noise_seed`` makes the noise reproducible."""
    return {
        "rotate_deg": round(float(rng.uniform(-10, 10)) * strength, 3),
        "scale": round(1.0 + float(rng.uniform(-0.1, 0.1)) * strength, 4),
        "shift_x": round(float(rng.uniform(-0.6, 0.6)) * strength, 3),
        "shift_y": round(float(rng.uniform(-0.6, 0.6)) * strength, 3),
        "noise_sigma": round(float(rng.uniform(0.0, 0.8)) * strength, 3),
        "noise_seed": int(rng.integers(2**31)),
    }


def apply_transform(
    pixels: Any, transform: dict[str, Any], side: int = 8, max_value: float = 16.0
) -> NDArray[np.float64]:
    """``pixels`` (a flat square image, ``side`` pixels a side) transformed as recorded in ``transform``."""
    from scipy import ndimage  # only here: augmentation is optional work

    image = np.asarray(pixels, dtype=np.float64).reshape(side, side)
    angle = np.deg2rad(float(transform["rotate_deg"]))
    scale = float(transform["scale"])
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    matrix = np.array([[cos, -sin], [sin, cos]])  # output → input coordinates (row, column)
    centre = np.array([(side - 1) / 2, (side - 1) / 2])
    shift = np.array([float(transform["shift_y"]), float(transform["shift_x"])])
    offset = centre - matrix @ (centre + shift)
    out = ndimage.affine_transform(image, matrix, offset=offset, order=1, mode="constant", cval=0.0)
    noise = np.random.default_rng(int(transform["noise_seed"])).normal(
        0.0, float(transform["noise_sigma"]), out.shape
    )
    return np.clip(out + noise, 0.0, max_value).ravel()


def augment(
    pixels: Any, rng: np.random.Generator, strength: float = 1.0, side: int = 8
) -> tuple[NDArray[np.float64], dict[str, float | int]]:
    """One augmented copy of ``pixels`` and the transform that made it."""
    transform = draw_transform(rng, strength)
    return apply_transform(pixels, transform, side), transform
