from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch
from pydantic import ValidationError

from strata.data.augment import Augmenter
from strata.data.augment_spec import STEP_NAMES, Flip, Rotate, applies_to, parse_steps
from strata.errors import DataError

EVERY_STEP = [{"name": name, "p": 1.0} for name in STEP_NAMES]


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 8, c: int = 3, h: int = 16, w: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, h, w, generator=seeded(seed))


def run(steps: list, x: torch.Tensor, y: torch.Tensor | None = None, seed: int = 0, n_classes: int | None = 4):
    y = torch.zeros(len(x), dtype=torch.long) if y is None else y
    return Augmenter(parse_steps(steps), n_classes)(x, y, seeded(seed))


# ------------------------------------------------------------------------------------------- spec
def test_bare_names_mean_defaults_and_dicts_set_parameters():
    flip, noise, rotate = parse_steps(["flip", {"name": "noise", "std": 0.1}, {"name": "rotate", "degrees": 30}])
    assert flip == Flip() and (flip.horizontal, flip.vertical, flip.p) == (True, False, 0.5)
    assert noise.std == 0.1
    assert rotate.degrees == (-30.0, 30.0) and Rotate().degrees == (-15.0, 15.0)


def test_steps_are_frozen():
    with pytest.raises(ValidationError, match="frozen"):
        parse_steps(["flip"])[0].p = 1.0  # type: ignore[misc]


def test_unknown_step_name_is_named_with_the_choices():
    with pytest.raises(ValidationError, match=r"'fllip'.*'flip', 'translate'"):
        parse_steps(["fllip"])


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": "translate", "fraction": 0.6}, "less than or equal to 0.5"),
        ({"name": "flip", "p": 1.5}, "less than or equal to 1"),
        ({"name": "flip", "horizontal": False}, "horizontal and vertical are both false"),
        ({"name": "rotate", "degrees": [30, 10]}, r"-180 <= low <= high <= 180, got \(30.0, 10.0\)"),
        ({"name": "resized_crop", "scale": [0.9, 0.5]}, r"scale must satisfy 0 < low <= high <= 1"),
        ({"name": "resized_crop", "ratio": [0, 1]}, r"ratio must satisfy 0 < low <= high"),
        ({"name": "jitter", "contrast": 1.0}, "less than 1"),
        ({"name": "jitter", "brightness": 0, "contrast": 0}, "both 0, so it would do nothing"),
        ({"name": "noise", "std": 0}, "greater than 0"),
        ({"name": "cutout", "size": 1.5}, "less than or equal to 1"),
        ({"name": "mixup", "alpha": -1}, "greater than 0"),
        ({"name": "noise", "sdt": 0.1}, r"sdt\n  Extra inputs are not permitted"),
    ],
)
def test_bad_parameters_are_rejected(raw, message):
    with pytest.raises(ValidationError, match=message):
        parse_steps([raw])


def test_which_steps_apply_to_which_data():
    fits = {
        kind: [s for s in STEP_NAMES if applies_to(parse_steps([s])[0], kind)] for kind in ("image", "signal", "table")
    }
    assert fits == {
        "image": list(STEP_NAMES),
        "signal": ["flip", "translate", "jitter", "noise", "cutout", "mixup"],
        "table": ["noise", "mixup"],
    }
    assert not applies_to(parse_steps([{"name": "flip", "vertical": True}])[0], "signal")


# ------------------------------------------------------------------------------------ every step
@pytest.mark.parametrize("step", EVERY_STEP, ids=STEP_NAMES)
def test_each_step_changes_the_batch_at_p1_and_leaves_it_at_p0(step):
    x = images()
    assert not torch.equal(run([step], x)[0], x)
    assert torch.equal(run([{**step, "p": 0.0}], x)[0], x)


@pytest.mark.parametrize("step", EVERY_STEP, ids=STEP_NAMES)
def test_inputs_are_not_modified_in_place(step):
    x, y = images(), torch.arange(8) % 4
    x0, y0 = x.clone(), y.clone()
    run([step], x, y)
    assert torch.equal(x, x0) and torch.equal(y, y0)


def test_same_seed_same_batch_other_seed_other_batch():
    x, y = images(), torch.arange(8) % 4
    a, b, c = (run(EVERY_STEP, x, y, seed=s) for s in (1, 1, 2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])


def test_targets_are_returned_unchanged_without_mixup():
    y = torch.arange(8) % 4
    out = run(["flip", "noise"], images(), y)[1]
    assert out is y


# -------------------------------------------------------------------------------------- geometry
def test_flip_at_p1_is_torch_flip():
    x = images()
    assert torch.equal(run([{"name": "flip", "p": 1}], x)[0], x.flip(-1))
    assert torch.equal(run([{"name": "flip", "horizontal": False, "vertical": True, "p": 1}], x)[0], x.flip(-2))


def shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """x moved down dy and right dx pixels, with zeros coming in."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[
        ..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def test_translate_moves_content_by_whole_pixels():
    x = torch.zeros(16, 1, 20, 20)
    x[:, 0, 10, 10] = 1.0  # one bright pixel, at the same place in every image
    x[:, 0, 5:15, 5:8] = torch.rand(16, 10, 3, generator=seeded(3)) * 0.5
    out = run([{"name": "translate", "fraction": 0.2}], x)[0]
    moves = set()
    for image, moved in zip(x, out, strict=True):
        (y, x_), *rest = (moved[0] == 1.0).nonzero().tolist()
        dy, dx = y - 10, x_ - 10
        assert not rest and abs(dy) <= 4 and abs(dx) <= 4
        torch.testing.assert_close(moved, shift(image, dy, dx), atol=1e-5, rtol=0)
        moves.add((dy, dx))
    assert len(moves) > 4


def test_rotate_by_90_degrees_matches_rot90():
    x = images(h=12, w=12)
    out = run([{"name": "rotate", "degrees": [90, 90], "p": 1}], x)[0]
    torch.testing.assert_close(out, torch.rot90(x, 1, (-2, -1)), atol=1e-4, rtol=0)


def test_resized_crop_zooms_in_without_reading_outside_the_image():
    x = torch.ones(8, 1, 16, 16)
    out = run([{"name": "resized_crop", "scale": [0.3, 0.5]}], x)[0]
    torch.testing.assert_close(out, x)  # every output pixel samples from inside: no zero padding enters
    ramp = torch.arange(16.0).expand(8, 1, 16, 16)
    zoomed = run([{"name": "resized_crop", "scale": [0.25, 0.25], "ratio": [1, 1]}], ramp)[0]
    spread = zoomed[..., -1] - zoomed[..., 0]  # a half-width box stretched to full width
    torch.testing.assert_close(spread, torch.full_like(spread, 7.5), atol=1e-4, rtol=0)


def test_consecutive_geometric_steps_compose_into_one_resampling():
    x = images()
    quarter = {"name": "rotate", "degrees": [45, 45], "p": 1}
    torch.testing.assert_close(
        run([quarter, quarter], x)[0], torch.rot90(x, 1, (-2, -1)), atol=1e-4, rtol=0
    )  # two blurry 45° turns would not reproduce rot90 exactly


# ------------------------------------------------------------------------------------ value steps
def test_cutout_zeroes_a_box_of_the_expected_area():
    x = images(c=3, h=20, w=20) + 1.0  # no zeros to start with
    out = run([{"name": "cutout", "size": 0.25, "p": 1}], x)[0]
    zeros = out == 0
    assert zeros.sum(dim=(2, 3)).eq(25).all()  # a 5 x 5 box in each channel of each image
    assert (zeros[:, :1] == zeros).all()  # the same box across channels


def test_jitter_brightness_shifts_each_images_mean():
    x = images(n=64)
    out = run([{"name": "jitter", "brightness": 0.3, "contrast": 0.0}], x)[0]
    delta = out.mean(dim=(1, 2, 3)) - x.mean(dim=(1, 2, 3))
    assert delta.abs().max() <= 0.3 + 1e-6 and delta.abs().min() > 0 and delta.std() > 0.05
    torch.testing.assert_close(out - x, delta.view(-1, 1, 1, 1).expand_as(x))


def test_noise_has_the_requested_spread():
    x = images(n=64)
    out = run([{"name": "noise", "std": 0.1}], x)[0]
    assert abs(float((out - x).std()) - 0.1) < 0.005


# ----------------------------------------------------------------------------------------- mixup
def test_mixup_gives_soft_targets_mixing_the_same_pairs_as_the_inputs():
    x, y = images(n=10), torch.arange(10)
    out, soft = run([{"name": "mixup", "alpha": 1.0}], x, y, n_classes=10)
    assert soft.shape == (10, 10) and soft.dtype == torch.float32
    torch.testing.assert_close(soft.sum(dim=1), torch.ones(10))
    for i in range(10):
        lam = float(soft[i, i])
        assert 0 < lam <= 1 and (soft[i] > 0).sum() <= 2
        partner = int(soft[i].clone().index_fill_(0, torch.tensor(i), -1).argmax())
        torch.testing.assert_close(out[i], lam * x[i] + (1 - lam) * x[partner])


def test_mixup_mixes_regression_targets_as_values():
    y = torch.arange(6.0).view(6, 1).expand(6, 2)  # float targets (N, T)
    x = torch.cat([y[:, :1], torch.rand(6, 3)], dim=1)  # the first input column is the target itself
    out, mixed = run([{"name": "mixup", "alpha": 1.0}], x, y, n_classes=None)
    assert mixed.shape == (6, 2) and not torch.equal(mixed, y)
    torch.testing.assert_close(mixed[:, 0], out[:, 0])  # inputs and targets mixed with the same weights
    torch.testing.assert_close(mixed[:, 0], mixed[:, 1])


def test_mixup_of_class_codes_needs_the_number_of_classes():
    with pytest.raises(DataError, match="mixup of class codes needs the number of classes; pass n_classes"):
        run(["mixup"], images(), n_classes=None)


# ----------------------------------------------------------------------------- signals and tables
def test_signals_take_their_steps_along_time():
    x = torch.rand(6, 2, 50, generator=seeded(1))
    assert torch.equal(run([{"name": "flip", "p": 1}], x)[0], x.flip(-1))
    out = run(["translate", {"name": "cutout", "p": 1}, "jitter", "noise", "mixup"], x)[0]
    assert out.shape == x.shape and not torch.equal(out, x)
    span = run([{"name": "cutout", "size": 0.2, "p": 1}], x + 1)[0] == 0
    assert span.sum(dim=2).eq(10).all()


def test_tables_take_noise_and_mixup():
    x = torch.rand(6, 5)
    out, soft = run(["noise", "mixup"], x, torch.arange(6) % 4)
    assert out.shape == x.shape and soft.shape == (6, 4)


@pytest.mark.parametrize(
    ("x", "step", "message"),
    [
        (
            torch.rand(4, 2, 30),
            "rotate",
            r"augment\[1\]: 'rotate' does not apply to signals \(N, C, L\), only to images \(N, C, H, W\); remove it. Steps for signals: flip, translate, jitter, noise, cutout, mixup",
        ),
        (
            torch.rand(4, 2, 30),
            {"name": "flip", "vertical": True},
            r"augment\[1\]: 'flip' with vertical: true does not apply to signals \(N, C, L\), only to images",
        ),
        (
            torch.rand(4, 5),
            "cutout",
            r"augment\[1\]: 'cutout' does not apply to tables \(N, F\), only to images \(N, C, H, W\) and signals \(N, C, L\); remove it. Steps for tables: noise, mixup",
        ),
    ],
)
def test_a_step_that_does_not_fit_the_data_is_named(x, step, message):
    with pytest.raises(DataError, match=message):
        run(["noise", step], x)


def test_other_ranks_and_integer_inputs_are_refused_clearly():
    with pytest.raises(DataError, match=r"images \(N, C, H, W\); got shape \(2, 1, 3, 4, 5\)"):
        run(["noise"], torch.rand(2, 1, 3, 4, 5))
    with pytest.raises(DataError, match=r"floating-point inputs, got torch\.int64"):
        run(["noise"], torch.ones(4, 3, dtype=torch.long))


# ----------------------------------------------------------------------------------------- speed
def test_a_batch_of_512_images_is_augmented_in_one_vectorised_pass():
    x, y = torch.rand(512, 3, 32, 32), torch.randint(10, (512,))
    augment = Augmenter(parse_steps(EVERY_STEP), n_classes=10)
    start = time.perf_counter()
    out, soft = augment(x, y, seeded())
    seconds = time.perf_counter() - start
    print(f"augmented 512 x 3 x 32 x 32 with every step in {seconds * 1000:.0f} ms")
    assert out.shape == x.shape and soft.shape == (512, 10)
    assert seconds < 5


def test_the_spec_module_does_not_import_torch():
    """The recipe imports the spec, and a recipe must be checkable without loading torch."""
    code = "import sys, strata.data.augment_spec; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
