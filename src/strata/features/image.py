"""Image columns: each value is a picture, (H, W, C) pixels, or a path to an image file.

Fitting records the size, the channel count, the pixel scale (255 for 8-bit pictures) and the mean
and standard deviation of every channel over the training rows (on the [0, 1] scale). Transforming
gives the `image` model input, float32 (N, C, H, W), normalised with those statistics. Paths are
decoded like the training images were: upright, converted to the same channels, resized to cover
the size and centre-cropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from strata.errors import DataError

STREAM_CHUNK = 256  # image files decoded at once when fitting statistics on a streamed table


def fit(column: pd.Series, options: dict[str, Any]) -> dict[str, Any]:
    from strata.data.images import fit_channel_stats, pixel_scale

    if column.attrs.get("streamed"):
        return _fit_streamed(column, column.attrs["streamed"])
    pixels = _pixels(column, None)
    scale = pixel_scale(pixels)
    stats = fit_channel_stats(pixels, np.arange(len(pixels)), scale)
    _, h, w, c = pixels.shape
    return {"size": [h, w], "channels": c, "scale": scale, "mean": stats["mean"], "std": stats["std"]}


def _fit_streamed(column: pd.Series, shape: dict[str, Any]) -> dict[str, Any]:
    """The statistics of image files too many to hold decoded: read STREAM_CHUNK at a time."""
    from strata.data.images import channel_stats

    state = {"size": shape["size"], "channels": shape["channels"], "scale": 255.0}
    paths = column.tolist()
    chunks = (
        np.stack(_decode_paths(column.name, paths[start : start + STREAM_CHUNK], state)).astype(np.float32) / 255
        for start in range(0, len(paths), STREAM_CHUNK)
    )
    return {**state, **channel_stats(chunks)}


def slot(state: dict[str, Any]) -> str:
    """The model input this column feeds: the convolutional networks' `image`."""
    return "image"


def width(state: dict[str, Any]) -> int:
    return 0  # nothing joins the `numeric` block


def transform(column: pd.Series, state: dict[str, Any]) -> np.ndarray:
    from strata.data.images import pixel_scale, to_tensor

    pixels = _pixels(column, state)
    stats = {"mean": state["mean"], "std": state["std"]}
    # The scale of these pictures, not the training ones': 8-bit files and floats in [0, 1] both work.
    scale = pixel_scale(pixels) if len(pixels) else state["scale"]
    return to_tensor(pixels, stats, scale).numpy()


def describe(state: dict[str, Any]) -> str:
    h, w = state["size"]
    return f"image {h}x{w}x{state['channels']}"


def _pixels(column: pd.Series, state: dict[str, Any] | None) -> np.ndarray:
    """(N, H, W, C) from pictures or paths; with `state`, each must have the fitted shape."""
    values = column.tolist()
    if any(isinstance(v, str | Path) for v in values):
        values = _decode_paths(column.name, values, state)
    if not values:
        shape = (0, *state["size"], state["channels"]) if state else (0, 1, 1, 1)
        return np.zeros(shape, dtype=np.uint8)
    arrays = []
    for i, value in enumerate(values):
        if not isinstance(value, np.ndarray) or value.ndim not in (2, 3):
            raise DataError(f"column '{column.name}' row {i}: expected a picture ((H, W) or (H, W, C) pixels) "
                            f"or an image path, got {type(value).__name__}")  # fmt: skip
        arrays.append(value[..., None] if value.ndim == 2 else value)
    first = arrays[0].shape
    if state is not None:
        first = (*state["size"], state["channels"])
    odd = next((i for i, a in enumerate(arrays) if a.shape != first), None)
    if odd is not None:
        raise DataError(
            f"column '{column.name}' row {odd}: picture is {_shape(arrays[odd].shape)}, expected {_shape(first)}"
            + ("" if state else "; give every picture one size (data.image_size resizes image files)")
        )
    return np.stack(arrays)


def _decode_paths(name: str, values: list, state: dict[str, Any] | None) -> list:
    from strata.data.images import read_image_paths

    if state is None:
        raise DataError(f"column '{name}' holds file paths; train from data.images so the size is known")
    paths = [v for v in values if isinstance(v, str | Path)]
    mode = "grayscale" if state["channels"] == 1 else "rgb"
    table = read_image_paths(paths, size=tuple(state["size"]), mode=mode)
    decoded = iter(list(table.pixels))
    return [next(decoded) if isinstance(v, str | Path) else v for v in values]


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape) + " (height x width x channels)"
