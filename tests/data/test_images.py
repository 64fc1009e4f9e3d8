"""Reading images: folders, CSV lists, arrays and digits; bad input names the file and what was expected."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from strata.data.images import (
    ImageFolderDataset,
    digits_images,
    fit_channel_stats,
    loader,
    read_arrays,
    read_image_csv,
    read_image_folder,
    read_image_paths,
    to_tensor,
)
from strata.data.mnist1d import make_mnist1d
from strata.errors import DataError, RecipeError

RNG = np.random.default_rng(0)


def save(path: Path, height: int, width: int, mode: str = "RGB", pixels: np.ndarray | None = None) -> None:
    """A noisy image (or the given pixels) at `path`, in the format its suffix names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if pixels is None:
        shape = (height, width) if mode == "L" else (height, width, 3)
        pixels = RNG.integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(pixels, mode).save(path)


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """cats: 2 RGB PNGs, dogs: 1 RGB JPEG and 1 grayscale PNG in a sub-folder, plus files to ignore."""
    root = tmp_path / "pets"
    save(root / "cats" / "b.png", 12, 16)
    save(root / "cats" / "a.png", 12, 16)
    save(root / "dogs" / "c.jpg", 12, 16)
    save(root / "dogs" / "more" / "d.png", 12, 16, "L")
    (root / "dogs" / "notes.txt").write_text("not an image")
    (root / "dogs" / ".DS_Store").write_bytes(b"\0\1\2")
    (root / "dogs" / "._c.jpg").write_bytes(b"AppleDouble")  # hidden, though its suffix says JPEG
    save(root / ".hidden" / "x.png", 12, 16)
    save(root / "loose.png", 12, 16)  # not in a class folder: ignored
    return root


def gray_folder(root: Path) -> Path:
    for label in ("0", "1"):
        for i in range(3):
            save(root / label / f"{i}.png", 8, 8, "L")
    return root


# ---------------------------------------------------------------- folders


def test_folder_shapes_labels_and_order(folder):
    table = read_image_folder(folder)
    assert table.pixels.shape == (4, 12, 16, 3) and table.pixels.dtype == np.uint8
    assert table.paths == ["cats/a.png", "cats/b.png", "dogs/c.jpg", "dogs/more/d.png"]
    assert table.labels == ["cats", "cats", "dogs", "dogs"] and table.classes == ["cats", "dogs"]
    assert table.skipped == [] and table.size == (12, 16) and table.channels == 3 and not table.streamed
    np.testing.assert_array_equal(table.pixels[0], np.asarray(Image.open(folder / "cats" / "a.png")))


def test_auto_mode_is_grayscale_only_when_every_image_is(folder, tmp_path):
    gray = read_image_folder(gray_folder(tmp_path / "g"))
    assert gray.pixels.shape == (6, 8, 8, 1) and gray.channels == 1
    assert read_image_folder(tmp_path / "g", mode="rgb").pixels.shape == (6, 8, 8, 3)
    as_gray = read_image_folder(folder, mode="grayscale")
    assert as_gray.pixels.shape == (4, 12, 16, 1)
    expected = np.asarray(Image.open(folder / "cats" / "a.png").convert("L"))
    np.testing.assert_array_equal(as_gray.pixels[0, :, :, 0], expected)
    # the grayscale image among RGB ones is repeated into three equal channels
    mixed = read_image_folder(folder).pixels[3]
    assert (mixed[..., 0] == mixed[..., 1]).all() and (mixed[..., 1] == mixed[..., 2]).all()


def test_mixed_sizes_need_a_size(tmp_path):
    save(tmp_path / "a" / "1.png", 20, 30)
    save(tmp_path / "b" / "2.png", 16, 16)
    message = (
        "images differ in size: 'a/1.png' is 20x30 and 'b/2.png' is 16x16 (height x width); "
        "set data.image_size to resize and centre-crop them to one size"
    )
    with pytest.raises(DataError, match=exactly(message)):
        read_image_folder(tmp_path)
    table = read_image_folder(tmp_path, size=(10, 12))
    assert table.pixels.shape == (2, 10, 12, 3) and table.size == (10, 12)


def test_centre_crop_keeps_the_middle(tmp_path):
    # 10 high, 30 wide: black | white | black thirds. The short side already fits: only the crop acts.
    pattern = np.zeros((10, 30, 3), np.uint8)
    pattern[:, 10:20] = 255
    pattern[0, 10] = (255, 0, 0)  # marks the crop's top-left corner
    save(tmp_path / "p" / "x.png", 10, 30, pixels=pattern)
    crop = read_image_folder(tmp_path, size=(10, 10)).pixels[0]
    np.testing.assert_array_equal(crop, pattern[:, 10:20])
    # twice as large: resized to 10x30 first (short side to 10), then the same middle third
    big = np.repeat(np.repeat(pattern, 2, axis=0), 2, axis=1)
    save(tmp_path / "p" / "x.png", 20, 60, pixels=big)
    crop = read_image_folder(tmp_path, size=(10, 10)).pixels[0].astype(int)
    assert crop[1:, 1:-1].min() >= 250 and crop.shape == (10, 10, 3)
    # a tall target on a wide image: height scales to 20, width 60 is cropped to its middle 10
    crop = read_image_folder(tmp_path, size=(20, 10)).pixels[0]
    np.testing.assert_array_equal(crop, big[:, 25:35])


def test_exif_orientation_is_applied(tmp_path):
    image = Image.fromarray(RNG.integers(0, 256, (10, 20, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated a quarter turn: shown 20 high, 10 wide
    (tmp_path / "c").mkdir()
    image.save(tmp_path / "c" / "r.jpg", exif=exif)
    assert read_image_folder(tmp_path).pixels.shape == (1, 20, 10, 3)


def test_corrupt_file_error_and_skip(folder):
    (folder / "cats" / "bad.png").write_bytes(RNG.integers(0, 256, 300, dtype=np.uint8).tobytes())
    message = "image file 'cats/bad.png' cannot be read: cannot identify image file"
    with pytest.raises(DataError, match=exactly(message)):
        read_image_folder(folder)
    table = read_image_folder(folder, on_error="skip")
    assert table.skipped == [("cats/bad.png", "cannot identify image file")]
    assert len(table) == 4 and table.pixels.shape[0] == 4 and "cats/bad.png" not in table.paths


def test_truncated_file_fails_when_decoded(folder):
    buffer = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(buffer, "PNG")
    (folder / "cats" / "cut.png").write_bytes(buffer.getvalue()[:200])  # the header reads, the pixels do not
    with pytest.raises(DataError, match=exactly("image file 'cats/cut.png' cannot be read: image file is truncated")):
        read_image_folder(folder)
    table = read_image_folder(folder, on_error="skip")
    assert [p for p, _ in table.skipped] == ["cats/cut.png"]
    assert table.pixels.shape[0] == len(table.paths) == len(table.labels) == 4


def test_a_class_left_without_readable_images(tmp_path):
    save(tmp_path / "a" / "1.png", 8, 8)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.png").write_bytes(b"not a png")
    message = f"class 'b' in '{tmp_path}' has no readable images (1 file skipped as unreadable)"
    with pytest.raises(DataError, match=exactly(message)):
        read_image_folder(tmp_path, on_error="skip")


def test_empty_class_folder(folder):
    (folder / "birds").mkdir()
    (folder / "birds" / "readme.txt").write_text("todo")
    message = f"class folder '{folder / 'birds'}' has no images (expected .png, .jpg, .jpeg, .bmp, .gif, .webp files)"
    with pytest.raises(DataError, match=exactly(message)):
        read_image_folder(folder)


def test_no_images_at_all(tmp_path):
    with pytest.raises(DataError, match=exactly(f"image folder '{tmp_path}' has no class sub-folders with images")):
        read_image_folder(tmp_path)
    save(tmp_path / "x.png", 8, 8)
    message = (
        f"image folder '{tmp_path}' has no class sub-folders with images "
        "(the images directly in it are unlabelled: use read_image_paths)"
    )
    with pytest.raises(DataError, match=exactly(message)):
        read_image_folder(tmp_path)
    with pytest.raises(DataError, match=exactly(f"image folder '{tmp_path / 'nope'}' not found")):
        read_image_folder(tmp_path / "nope")


def test_bad_options(folder):
    with pytest.raises(
        RecipeError, match=exactly("image mode 'rbg' is not one of rgb, grayscale, auto (did you mean 'rgb'?)")
    ):
        read_image_folder(folder, mode="rbg")
    with pytest.raises(
        RecipeError, match=exactly("data.image_size must be two positive integers [height, width], got (0, 8)")
    ):
        read_image_folder(folder, size=(0, 8))


# ---------------------------------------------------------------- CSV and unlabelled


def test_csv_of_paths_and_labels(folder, tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text("file,kind\npets/dogs/c.jpg,dog\npets/cats/a.png,cat\n")
    table = read_image_csv(listing, path_column="file", label_column="kind")
    assert table.paths == ["pets/dogs/c.jpg", "pets/cats/a.png"] and table.labels == ["dog", "cat"]
    assert table.pixels.shape == (2, 12, 16, 3)
    message = f"data file '{listing}' has no column 'path' (columns: file, kind)"
    with pytest.raises(DataError, match=exactly(message)):
        read_image_csv(listing)


def test_csv_missing_files_and_empty_cells(folder, tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text("path,label\npets/cats/a.png,cat\npets/cats/gone.png,cat\n")
    with pytest.raises(DataError, match=exactly("image file 'pets/cats/gone.png' cannot be read: not found")):
        read_image_csv(listing)
    assert read_image_csv(listing, on_error="skip").skipped == [("pets/cats/gone.png", "not found")]
    listing.write_text("path,label\npets/cats/a.png,\npets/cats/b.png,cat\n")
    with pytest.raises(DataError, match=exactly(f"data file '{listing}': column 'label' is empty in row 0")):
        read_image_csv(listing)


def test_unlabelled_flat_folder_and_list(tmp_path):
    for name in ("b.png", "a.jpg", "c.bmp", "d.gif", "e.webp"):
        save(tmp_path / name, 8, 8)
    save(tmp_path / "sub" / "f.png", 8, 8)
    (tmp_path / "notes.txt").write_text("x")
    table = read_image_paths(tmp_path)
    assert table.paths == ["a.jpg", "b.png", "c.bmp", "d.gif", "e.webp", "sub/f.png"] and table.labels is None
    assert table.pixels.shape == (6, 8, 8, 3)
    listed = read_image_paths([tmp_path / "b.png", tmp_path / "a.jpg"])
    np.testing.assert_array_equal(listed.pixels, table.pixels[[1, 0]])


# ---------------------------------------------------------------- arrays and digits


def test_npy_arrays(tmp_path):
    np.save(tmp_path / "x.npy", RNG.integers(0, 256, (5, 6, 7), dtype=np.uint8))
    table = read_arrays(tmp_path / "x.npy")
    assert table.pixels.shape == (5, 6, 7, 1) and table.labels is None and table.scale == 255
    assert table.paths[2] == "x.npy[2]"
    np.save(tmp_path / "f.npy", RNG.random((4, 6, 7, 3)))
    floats = read_arrays(tmp_path / "f.npy")
    assert floats.pixels.dtype == np.float32 and floats.scale == 1.0 and floats.channels == 3
    np.save(tmp_path / "f255.npy", RNG.random((4, 6, 7, 3)) * 255)
    assert read_arrays(tmp_path / "f255.npy").scale == 255.0


def test_npz_keys_and_labels(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((3, 4, 4), np.uint8), labels=np.array([2, 0, 2]))
    table = read_arrays(tmp_path / "d.npz")
    assert table.labels == ["2", "0", "2"] and table.pixels.shape == (3, 4, 4, 1)
    np.savez(tmp_path / "e.npz", pixels=np.zeros((3, 4, 4)), target=np.zeros(3))
    message = f"array file '{tmp_path / 'e.npz'}' has no image array: expected a key x, X or images (keys found: pixels, target)"
    with pytest.raises(DataError, match=exactly(message)):
        read_arrays(tmp_path / "e.npz")


def test_bad_arrays(tmp_path):
    np.save(tmp_path / "big.npy", np.full((2, 4, 4), 4095.0))
    with pytest.raises(
        DataError, match=r"pixel values from 4095 to 4095; expected uint8, or floats in \[0, 1\] or \[0, 255\]$"
    ):
        read_arrays(tmp_path / "big.npy")
    np.save(tmp_path / "cf.npy", np.zeros((2, 3, 28, 28), np.uint8))
    with pytest.raises(DataError, match=r"shape \(2, 3, 28, 28\) looks channels-first; expected \(N, H, W, C\)"):
        read_arrays(tmp_path / "cf.npy")
    np.savez(tmp_path / "n.npz", x=np.zeros((3, 4, 4)), y=np.zeros(2))
    with pytest.raises(DataError, match=r"3 images but labels shaped \(2,\); expected \(3,\)$"):
        read_arrays(tmp_path / "n.npz")
    (tmp_path / "junk.npy").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"junk.npy' cannot be read as NumPy"):
        read_arrays(tmp_path / "junk.npy")


def test_digits_as_images():
    table = digits_images()
    assert table.pixels.shape == (1797, 8, 8, 1) and table.pixels.dtype == np.uint8
    assert table.pixels.max() == 255 and table.labels[:3] == ["0", "1", "2"] and table.classes == list("0123456789")


# ---------------------------------------------------------------- normalisation


def test_stats_come_from_training_rows_only():
    pixels = RNG.integers(0, 256, (20, 5, 5, 3), dtype=np.uint8)
    train = np.arange(15)
    stats = fit_channel_stats(pixels, train)
    assert set(stats) == {"mean", "std"} and len(stats["mean"]) == 3
    assert all(isinstance(v, float) for v in stats["mean"] + stats["std"])
    changed = pixels.copy()
    changed[17] = 255  # a test row
    assert fit_channel_stats(changed, train) == stats
    mask = np.zeros(20, bool)
    mask[:15] = True
    assert fit_channel_stats(pixels, mask) == stats
    np.testing.assert_allclose(stats["mean"], (pixels[:15] / 255).mean(axis=(0, 1, 2)), rtol=1e-6)


def test_tensor_is_normalised_on_training_rows():
    pixels = RNG.integers(0, 200, (30, 6, 6, 3), dtype=np.uint8)
    stats = fit_channel_stats(pixels, np.arange(20))
    x = to_tensor(pixels, stats)
    assert x.shape == (30, 3, 6, 6) and x.dtype == torch.float32
    train = x[:20].transpose(0, 1).reshape(3, -1)
    torch.testing.assert_close(train.mean(1), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(train.std(1, unbiased=False), torch.ones(3), atol=1e-4, rtol=0)
    # the same images as floats in [0, 1] give the same tensor
    torch.testing.assert_close(to_tensor(pixels / 255.0, stats), x)
    with pytest.raises(
        DataError, match=exactly("images have 1 channel but the channel statistics have 3 (fitted on other images)")
    ):
        to_tensor(pixels[..., :1], stats)


# ---------------------------------------------------------------- streaming


def test_streamed_dataset_matches_the_in_memory_tensor(folder):
    memory = read_image_folder(folder, size=(8, 8))
    streamed = read_image_folder(folder, size=(8, 8), stream_bytes=0)
    assert streamed.streamed and streamed.paths == memory.paths and streamed.labels == memory.labels
    stats = fit_channel_stats(memory.pixels, np.arange(3))
    dataset = ImageFolderDataset(streamed, stats)
    from_files = fit_channel_stats(dataset, np.arange(3))
    np.testing.assert_allclose(from_files["mean"], stats["mean"], rtol=1e-6)
    np.testing.assert_allclose(from_files["std"], stats["std"], rtol=1e-5)
    expected = to_tensor(memory.pixels, stats)
    for i in range(len(dataset)):
        image, target = dataset[i]
        torch.testing.assert_close(image, expected[i])
        assert target == [0, 0, 1, 1][i]


def test_loader_is_seeded(tmp_path):
    table = read_image_folder(gray_folder(tmp_path), stream_bytes=0)
    dataset = ImageFolderDataset(table)

    def batches(seed: int, workers: int = 0) -> list[torch.Tensor]:
        return [y for _, y in loader(dataset, 2, torch.Generator().manual_seed(seed), workers)]

    first = batches(1)
    assert [y.tolist() for y in first] == [y.tolist() for y in batches(1)]
    assert sorted(torch.cat(first).tolist()) == [0, 0, 0, 1, 1, 1]
    assert any(
        [y.tolist() for y in batches(s)] != [y.tolist() for y in first] for s in (2, 3, 4)
    )  # another seed, another order
    assert [y.tolist() for y in batches(1, workers=2)] == [y.tolist() for y in batches(1, workers=2)]


# ---------------------------------------------------------------- MNIST-1D


def test_mnist1d_is_the_reference_dataset():
    x, y = make_mnist1d()
    assert x.shape == (5000, 40) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [500] * 10
    # values from the `mnist1d` package (0.0.2.post1): make_dataset() with its defaults, seed 42
    assert y[:10].tolist() == [2, 6, 4, 5, 6, 6, 6, 0, 3, 1]
    np.testing.assert_allclose(x[0, :5], [-0.33200567, -0.47191037, -0.77869708, -1.00974083, -0.88235257], atol=1e-6)
    assert abs(float(x.mean())) < 1e-5 and abs(float(x.std()) - 1) < 1e-5


def test_mnist1d_is_seeded():
    x, y = make_mnist1d(200, seed=3)
    again, same = make_mnist1d(200, seed=3)
    np.testing.assert_array_equal(x, again)
    np.testing.assert_array_equal(y, same)
    assert not np.array_equal(make_mnist1d(200, seed=4)[0], x)
    assert np.bincount(y).tolist() == [20] * 10
