"""Every plot renders to a valid, non-blank PNG of a sensible size, draws what it is asked to (told
apart by matplotlib's tab colours), and never goes through pyplot."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from strata.evaluation import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# matplotlib's tab palette, as RGB
BLUE, ORANGE, GREEN, RED = (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)


def check_png(png: bytes) -> np.ndarray:
    """The image as an (H, W, 3) uint8 array, after checking it is a sound PNG of a sensible size."""
    assert isinstance(png, bytes)
    assert png.startswith(PNG_SIGNATURE)
    Image.open(io.BytesIO(png)).verify()  # checks the chunks and their CRCs
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    width, height = image.size
    assert 400 <= width <= 3000 and 300 <= height <= 2000, image.size
    pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 20  # not a blank canvas
    packed = pixels.astype(np.uint32) @ np.array([1 << 16, 1 << 8, 1], dtype=np.uint32)
    assert len(np.unique(packed)) > 50  # distinct colours: text, lines and anti-aliasing
    return pixels


def count(pixels: np.ndarray, colour: tuple[int, int, int], least: float = 0.4) -> int:
    """Pixels of a colour drawn over white at an opacity (or anti-aliased coverage) of at least `least`:
    those on the line from white to the colour, at least that far along it."""
    white = np.full(3, 255.0)
    towards = white - np.asarray(colour, dtype=float)
    away = white - pixels.astype(float)  # (H, W, 3)
    alpha = away @ towards / (towards @ towards)
    off_line = np.linalg.norm(away - alpha[..., None] * towards, axis=2)
    return int(((alpha >= least) & (alpha <= 1.05) & (off_line < 12)).sum())


def history(epochs: int, val: bool = True, metric: bool = True) -> list[dict[str, float]]:
    rows = []
    for e in range(1, epochs + 1):
        row = {"epoch": e, "train_loss": 1 / e, "lr": 1e-3 * 0.9**e}
        if val:
            row["val_loss"] = 1 / e + 0.02 * e
        if metric:
            row["val_accuracy"] = 1 - 0.5 / e
        rows.append(row)
    return rows


def classification_case(n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, k, n)
    proba = rng.dirichlet(np.ones(k), n)
    proba[np.arange(n), codes] += rng.uniform(0, 1, n)
    return codes, proba / proba.sum(1, keepdims=True)


# ------------------------------------------------------------------------------ learning curve
def test_learning_curve_draws_train_validation_metric_and_lr():
    pixels = check_png(plots.learning_curve(history(20), title="a run"))
    assert count(pixels, BLUE) > 100  # train loss
    assert count(pixels, ORANGE) > 100  # validation loss
    assert count(pixels, GREEN) > 100  # validation accuracy
    assert count(pixels, RED) == 0  # no best epoch asked for


def test_learning_curve_without_validation_has_one_panel_and_no_validation_line():
    alone = check_png(plots.learning_curve(history(20, val=False, metric=False)))
    both = check_png(plots.learning_curve(history(20)))
    assert alone.shape[1] < both.shape[1]  # one panel is narrower than two
    assert count(alone, BLUE) > 100
    assert count(alone, ORANGE) == 0 and count(alone, GREEN) == 0


def test_learning_curve_marks_the_best_epoch():
    pixels = check_png(plots.learning_curve(history(20), best_epoch=7))
    assert count(pixels, RED) > 100  # a dashed line in each panel, and its legend entry


@pytest.mark.parametrize("epochs", [1, 2, 80])
def test_learning_curve_of_very_short_and_long_runs(epochs):
    check_png(plots.learning_curve(history(epochs), best_epoch=1))


def test_learning_curve_of_a_regression_run_shows_r2():
    rows = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_r2": 1 - 1 / e, "lr": 0.01} for e in range(1, 9)
    ]
    assert count(check_png(plots.learning_curve(rows)), GREEN) > 100


# -------------------------------------------------------------------------- confusion matrix
@pytest.mark.parametrize("k", [3, 15])
def test_confusion_matrix(k):
    rng = np.random.default_rng(k)
    matrix = (rng.integers(0, 5, (k, k)) + np.diag(rng.integers(20, 40, k))).tolist()
    classes = [f"a rather long class name {i}" for i in range(k)]
    pixels = check_png(plots.confusion(matrix, classes, "test"))
    dark = (pixels.sum(2) < 200).sum()  # the diagonal's deep blue cells and the text
    assert dark > 1000


def test_confusion_matrix_grows_with_the_classes():
    three = check_png(plots.confusion(np.eye(3, dtype=int).tolist(), ["a", "b", "c"], "val"))
    fifteen = check_png(plots.confusion(np.eye(15, dtype=int).tolist(), list(range(15)), "val"))
    assert fifteen.shape[0] > three.shape[0] and fifteen.shape[1] > three.shape[1]


def test_confusion_matrix_of_an_empty_class_row():
    check_png(plots.confusion([[5, 1, 0], [0, 0, 0], [2, 0, 7]], ["a", "b", "c"], "test"))


# ------------------------------------------------------------------------------------ curves
@pytest.mark.parametrize("draw", [plots.roc, plots.precision_recall])
def test_binary_curves_draw_one_curve(draw):
    codes, proba = classification_case(300, 2)
    pixels = check_png(draw(codes, proba, ["no", "yes"], "test"))
    assert count(pixels, BLUE) > 100
    assert count(pixels, ORANGE) == 0  # one class only: the positive one


@pytest.mark.parametrize("draw", [plots.roc, plots.precision_recall])
def test_multiclass_curves_draw_one_curve_per_class(draw):
    codes, proba = classification_case(400, 4)
    pixels = check_png(draw(codes, proba, ["a", "b", "c", "d"], "test"))
    for colour in (BLUE, ORANGE, GREEN, RED):
        assert count(pixels, colour) > 100, colour


@pytest.mark.parametrize("draw", [plots.roc, plots.precision_recall])
def test_curves_skip_a_class_missing_from_the_labels(draw):
    codes, proba = classification_case(300, 3)
    codes[codes == 2] = 0
    check_png(draw(codes, proba, ["a", "b", "c"], "val"))


# ------------------------------------------------------------------------------- reliability
def test_reliability_diagram():
    codes, proba = classification_case(500, 3)
    pixels = check_png(plots.reliability(codes, proba, "test"))
    assert count(pixels, RED) > 100  # mean confidence against accuracy


def test_reliability_diagram_with_every_row_in_one_bin():
    codes = np.array([0, 1, 0, 1])
    check_png(plots.reliability(codes, np.tile([0.95, 0.05], (4, 1)), "test"))


# -------------------------------------------------------------------------------- regression
def test_regression_fit():
    rng = np.random.default_rng(1)
    y = rng.normal(50, 10, 300)
    pixels = check_png(plots.regression_fit(y, y + rng.normal(0, 3, 300), "price", "test"))
    assert count(pixels, RED) > 100  # the identity and zero-residual lines
    assert count(pixels, BLUE) > 500  # the scatter points (semi-transparent)


# ---------------------------------------------------------------------------- target balance
def test_target_balance_of_classes():
    rng = np.random.default_rng(2)
    parts = {"train": rng.integers(0, 6, 300), "val": rng.integers(0, 6, 60), "test": rng.integers(0, 6, 60)}
    pixels = check_png(plots.target_balance(parts, [f"class {i}" for i in range(6)], "label"))
    for colour in (BLUE, ORANGE, GREEN):  # one bar colour per split
        assert count(pixels, colour) > 200, colour


def test_target_balance_of_a_class_absent_from_a_split():
    parts = {"train": np.array([0, 1, 2, 2]), "test": np.array([0, 0])}
    check_png(plots.target_balance(parts, ["a", "b", "c"], "label"))


def test_target_balance_of_regression_values():
    rng = np.random.default_rng(3)
    parts = {"train": rng.normal(0, 1, 500), "val": rng.normal(0.2, 1, 100)}
    pixels = check_png(plots.target_balance(parts, None, "price"))
    assert count(pixels, BLUE) > 200  # semi-transparent histograms


# --------------------------------------------------------------------------------- lr range
def test_lr_range_marks_the_suggestion():
    lrs = list(np.geomspace(1e-6, 1, 80))
    losses = [2.0 - np.tanh(np.log10(lr) + 3) for lr in lrs]
    marked = check_png(plots.lr_range(lrs, losses, 1e-3))
    plain = check_png(plots.lr_range(lrs, losses, None))
    assert count(marked, BLUE) > 100
    assert count(marked, RED) > 100 and count(plain, RED) == 0


# ------------------------------------------------------------------------------------ pyplot
def test_plots_never_import_pyplot():
    codes, proba = "np.array([0, 1, 2, 1, 0, 2])", "np.eye(3)[[0, 1, 2, 0, 0, 2]] * 0.7 + 0.1"
    script = f"""
import sys
import numpy as np
from strata.evaluation import plots

codes, proba = {codes}, {proba}
plots.learning_curve([{{"epoch": 1, "train_loss": 1.0, "val_loss": 1.1, "val_accuracy": 0.5, "lr": 0.1}}], 1)
plots.confusion([[1, 0], [0, 1]], ["a", "b"], "test")
plots.roc(codes, proba, ["a", "b", "c"], "test")
plots.precision_recall(codes, proba, ["a", "b", "c"], "test")
plots.reliability(codes, proba, "test")
plots.regression_fit(np.arange(5.0), np.arange(5.0) + 0.5, "y", "test")
plots.target_balance({{"train": codes}}, ["a", "b", "c"], "label")
plots.lr_range([1e-3, 1e-2, 1e-1], [1.0, 0.5, 2.0], 1e-2)
assert "matplotlib" in sys.modules
assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
