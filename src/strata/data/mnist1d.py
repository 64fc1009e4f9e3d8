"""MNIST-1D (Greydanus, "Scaling Down Deep Learning", 2020), generated here: no download, no extra package.

A port of `mnist1d.data.make_dataset` with its default arguments (github.com/greydanus/mnist1d,
mnist1d/data.py and transform.py): ten 12-point digit-like templates, each padded with 36-60 zeros,
stretched to 72 points, scaled, translated, filled with correlated noise where it is zero, plus iid
noise, sheared and resampled to 40 points. Random draws follow the reference's order on a private
RandomState, so `make_mnist1d(seed=42)` equals the reference dataset (train: its first 80% of rows,
test: the rest) without touching the global NumPy seed as the reference does.
"""

from __future__ import annotations

import numpy as np

TEMPLATE_LEN = 12
PADDING = (36, 60)
SCALE_COEFF = 0.4
MAX_TRANSLATION = 48
CORR_NOISE_SCALE = 0.25
IID_NOISE_SCALE = 2e-2
SHEAR_SCALE = 0.75
FINAL_SEQ_LENGTH = 40
SEED = 42  # the reference's default
TRAIN_SPLIT = 0.8  # the reference's split: the first 80% of rows train, the rest test

_DIGITS = [
    [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
    [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
    [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
    [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
    [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
    [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
    [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
    [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
    [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
    [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
]


def templates() -> np.ndarray:
    """The ten templates (10, 12): whitened, starting at 0, divided by 6."""
    x = np.asarray(_DIGITS, dtype=np.float64)
    x -= x.mean(1, keepdims=True)
    x /= x.std(1, keepdims=True)
    x -= x[:, :1]
    return x / 6.0


def make_mnist1d(n: int = 5000, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """`n // 10` signals per digit, shuffled: x float32 (n', 40) standardised over the whole set, y int64 (n',).

    n' = 10 * (n // 10). The reference's defaults are n=5000 and seed=42.
    """
    rng = np.random.RandomState(seed)  # the reference's generator (legacy MT19937), for identical draws
    xs, ys = [], []
    for label, template in enumerate(templates()):
        for _ in range(n // 10):
            xs.append(_transform(template, rng))
            ys.append(label)
    order = rng.permutation(len(ys))
    x, y = np.stack(xs)[order], np.asarray(ys, dtype=np.int64)[order]
    x = (x - x.mean()) / x.std()
    return x.astype(np.float32), y


def _transform(x: np.ndarray, rng: np.random.RandomState, eps: float = 1e-8) -> np.ndarray:
    low, high = PADDING
    padded = np.concatenate([x + eps, np.zeros(low + int(rng.rand() * (high - low + 1)))])
    new_x = _interpolate(padded, TEMPLATE_LEN + high)  # dilate
    new_x *= 1 + SCALE_COEFF * (rng.rand() - 0.5)  # scale
    k = rng.choice(MAX_TRANSLATION)  # translate (circular)
    new_x = np.concatenate([new_x[-k:], new_x[:-k]])
    mask = new_x != 0
    new_x = mask * new_x + (1 - mask) * _corr_noise(new_x.shape, rng)
    new_x = new_x + IID_NOISE_SCALE * rng.randn(*new_x.shape)
    new_x = new_x - SHEAR_SCALE * (rng.rand() - 0.5) * np.linspace(-0.5, 0.5, len(new_x))  # shear
    return _interpolate(new_x, FINAL_SEQ_LENGTH)


def _corr_noise(shape: tuple[int, ...], rng: np.random.RandomState) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(CORR_NOISE_SCALE * rng.randn(*shape), 2)


def _interpolate(x: np.ndarray, n: int) -> np.ndarray:
    return np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(x)), x)
