"""Reading images: class folders, a CSV of path,label, unlabelled files, NumPy arrays and the bundled digits.

Every source gives an ImageTable: uint8 (or float) pixels shaped (N, H, W, C), one label per image
(strings; None when unlabelled), and each image's path. Files are decoded with Pillow (PNG, JPEG,
BMP, GIF (first frame), WebP), turned upright by their EXIF orientation, converted to grayscale
(1 channel) or RGB (3 channels; alpha is dropped) and, when a size is set, resized so that they
cover it and centre-cropped to exactly that size.

Small sets are decoded once, up front. A set whose decoded uint8 pixels would take more than
STREAM_BYTES is only listed (its table has pixels None) and is decoded batch by batch through
ImageFolderDataset and `loader`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from strata.errors import DataError, RecipeError, one_of, plural, rows_text

if TYPE_CHECKING:
    from PIL import Image

# Decoded uint8 pixels above this are streamed from disk instead of decoded up front. The in-memory
# path also builds a float32 tensor four times that size (to_tensor), so 1 GiB of pixels means a
# peak near 5 GiB: within a 16 GB laptop. That is about 7,000 RGB images at 224x224, or 100,000 at
# 56x56; CIFAR-10 (150 MiB) and MNIST (45 MiB) stay in memory.
STREAM_BYTES = 1024**3
CHUNK_BYTES = 64 * 1024**2  # float32 working set of one chunk in fit_channel_stats / to_tensor
SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MODES = ("rgb", "grayscale", "auto")
ON_ERROR = ("error", "skip")
GRAY_MODES = ("1", "L", "LA")  # Pillow modes that "auto" reads as grayscale
X_KEYS = ("x", "X", "images")  # .npz keys looked for, first found wins
Y_KEYS = ("y", "Y", "labels")
MIN_STD = 1e-6  # a constant channel is only centred, not divided by ~0
SIZE_KEY = "data.image_size"


@dataclass
class ImageTable:
    """Images of one size. `pixels / scale` is on the [0, 1] scale; pixels is None when streamed."""

    pixels: np.ndarray | None  # (N, H, W, C): uint8 from files; uint8 or float32 from arrays
    labels: list[str] | None  # None: unlabelled
    paths: list[str]  # relative to root (as written, for a CSV); 'file.npz[7]' for arrays
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), on_error "skip"
    root: str = ""
    size: tuple[int, int] = (0, 0)  # (height, width)
    channels: int = 1
    scale: float = 255.0  # 255 for uint8 and for floats in [0, 255]; 1 for floats in [0, 1]

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def streamed(self) -> bool:
        return self.pixels is None

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels or []))


@dataclass(frozen=True)
class _Options:
    size: tuple[int, int] | None
    mode: str
    on_error: str
    stream_bytes: int


@dataclass(frozen=True)
class _Header:
    index: int  # position in the list of files
    mode: str
    size: tuple[int, int]  # (height, width), upright


class _Unreadable(Exception):
    """Pillow could not read a file; the message is Pillow's reason."""


# ---------------------------------------------------------------- sources


def read_image_folder(
    root: str | Path,
    size: tuple[int, int] | None = None,
    mode: str = "auto",
    on_error: str = "error",
    stream_bytes: int = STREAM_BYTES,
) -> ImageTable:
    """One sub-folder per class (searched recursively); classes in name order, files in path order.

    Hidden files and folders, files of other types and images loose in `root` itself are ignored.
    """
    options = _options(size, mode, on_error, stream_bytes)
    root = _folder(root)
    files, labels = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found = _images_in(folder, root)
        if not found:
            raise DataError(f"class folder '{folder}' has no images (expected {', '.join(SUFFIXES)} files)")
        files += found
        labels += [folder.name] * len(found)
    if not files:
        unlabelled = _images_in(root, root, recursive=False)
        loose = " (the images directly in it are unlabelled: use read_image_paths)" if unlabelled else ""
        raise DataError(f"image folder '{root}' has no class sub-folders with images{loose}")
    return _read(root, files, labels, options)


def read_image_csv(
    csv_path: str | Path,
    path_column: str = "path",
    label_column: str | None = "label",
    size: tuple[int, int] | None = None,
    mode: str = "auto",
    on_error: str = "error",
    stream_bytes: int = STREAM_BYTES,
) -> ImageTable:
    """A CSV of image paths (relative to the CSV's folder, or absolute) and labels (label_column None: none)."""
    from strata.data.sources import read_table

    options = _options(size, mode, on_error, stream_bytes)
    frame = read_table(csv_path, "csv")
    columns = [path_column] + ([label_column] if label_column else [])
    for column in columns:
        if column not in frame.columns:
            found = ", ".join(str(c) for c in frame.columns)
            raise DataError(f"data file '{csv_path}' has no column '{column}' (columns: {found})")
        missing = np.flatnonzero(frame[column].isna().to_numpy())
        if len(missing):
            where = rows_text(missing, len(missing))
            raise DataError(f"data file '{csv_path}': column '{column}' is empty in {where}")
    labels = [str(v) for v in frame[label_column]] if label_column else None
    return _read(Path(csv_path).parent, [str(p) for p in frame[path_column]], labels, options)


def read_image_paths(
    paths: str | Path | Sequence[str | Path],
    size: tuple[int, int] | None = None,
    mode: str = "auto",
    on_error: str = "error",
    stream_bytes: int = STREAM_BYTES,
) -> ImageTable:
    """Unlabelled images (for prediction): a folder, flat or nested, searched recursively, or a list of files."""
    options = _options(size, mode, on_error, stream_bytes)
    if isinstance(paths, str | Path):
        root = _folder(paths)
        files = _images_in(root, root)
        if not files:
            raise DataError(f"image folder '{root}' has no images (expected {', '.join(SUFFIXES)} files)")
        return _read(root, files, None, options)
    if not paths:
        raise DataError("no image files given")
    return _read(Path(), [str(p) for p in paths], None, options)


def read_arrays(path: str | Path) -> ImageTable:
    """Images in a .npy file, (N, H, W) or (N, H, W, C), or an .npz file with keys X_KEYS and, optionally, Y_KEYS.

    Values may be uint8, integers in [0, 255], floats in [0, 1] (scale 1) or floats in [0, 255] (scale 255);
    floats are kept as float32 and divided by `scale` when turned into a tensor.
    """
    path = Path(path)
    if path.suffix.lower() not in (".npy", ".npz"):
        raise DataError(f"array file '{path}': expected a .npy or .npz file, got '{path.suffix}'")
    if not path.is_file():
        raise DataError(f"array file '{path}' not found")
    x, y = _load_arrays(path)
    pixels, scale = _pixel_values(_as_nhwc(x, path), path)
    labels = None if y is None else _label_strings(y, len(pixels), path)
    paths = [f"{path.name}[{i}]" for i in range(len(pixels))]
    _, h, w, c = pixels.shape
    return ImageTable(pixels, labels, paths, root=str(path.parent), size=(h, w), channels=c, scale=scale)


def digits_images() -> ImageTable:
    """scikit-learn's 1,797 handwritten digits as 8x8x1 uint8 images (0..16 scaled to 0..255); labels '0'..'9'."""
    import sklearn.datasets

    bunch = sklearn.datasets.load_digits()
    pixels = np.rint(bunch.images * (255 / 16)).astype(np.uint8)[..., None]
    paths = [f"digits[{i}]" for i in range(len(pixels))]
    return ImageTable(pixels, [str(t) for t in bunch.target], paths, size=(8, 8), channels=1)


# ---------------------------------------------------------------- normalisation


def pixel_scale(pixels: np.ndarray) -> float:
    """255 for integer pixels and for floats above 1; 1 for floats in [0, 1]."""
    if not np.issubdtype(pixels.dtype, np.floating) or pixels.size == 0:
        return 255.0
    return 1.0 if float(np.max(pixels)) <= 1.0 else 255.0


def fit_channel_stats(
    pixels: np.ndarray | ImageFolderDataset, rows: np.ndarray, scale: float | None = None
) -> dict[str, list[float]]:
    """Per-channel mean and (population) standard deviation on the [0, 1] scale, over `rows` only.

    `rows` are row positions (or a boolean mask): the training rows, so no test image leaks into them.
    `pixels` is an (N, H, W, C) array or, for a streamed set, its ImageFolderDataset.
    """
    rows = _positions(rows, len(pixels))
    if not len(rows):
        raise DataError("no training rows to fit the image channel statistics on")
    return channel_stats(chunk for _, chunk in _chunks(pixels, rows, scale))


def channel_stats(chunks: Iterable[np.ndarray]) -> dict[str, list[float]]:
    """Mean and population standard deviation per channel of (k, H, W, C) chunks on the [0, 1] scale,
    summed in float64 one chunk at a time (so any number of pictures fits in memory)."""
    total = total_sq = 0.0
    count = 0
    for chunk in chunks:
        flat = chunk.reshape(-1, chunk.shape[-1]).astype(np.float64)
        total, total_sq = total + flat.sum(0), total_sq + np.square(flat).sum(0)
        count += len(flat)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    std = np.where(std < MIN_STD, 1.0, std)
    return {"mean": [float(m) for m in mean], "std": [float(s) for s in std]}


def to_tensor(pixels: np.ndarray, stats: dict[str, list[float]], scale: float | None = None) -> torch.Tensor:
    """(N, H, W, C) pixels as a normalised float32 tensor (N, C, H, W), converted chunk by chunk."""
    n, h, w, c = _check_channels(pixels, stats)
    out = torch.empty((n, c, h, w), dtype=torch.float32)
    mean, std = _stats_tensors(stats)
    for start, chunk in _chunks(pixels, np.arange(n), scale):
        x = torch.from_numpy(chunk).permute(0, 3, 1, 2)
        out[start : start + len(chunk)] = (x - mean) / std
    return out


# ---------------------------------------------------------------- streaming


class ImageFolderDataset(Dataset):
    """Decodes one image per item, with the table's size and channels; item: (image (C, H, W), class index).

    For tables read from image files. Only headers were read when the table was made, so a file whose
    pixels turn out broken raises a DataError naming it when its batch is decoded (it cannot be skipped then).

    The image is normalised with `stats` (or only scaled to [0, 1] when stats is None). The class index
    is the label's position in `classes` (default: the table's sorted labels); -1 when unlabelled.
    """

    def __init__(
        self, table: ImageTable, stats: dict[str, list[float]] | None = None, classes: Sequence[str] | None = None
    ):
        self.root = Path(table.root)
        self.paths = list(table.paths)
        self.size = table.size
        self.channels = table.channels
        self.stats = stats
        self._norm = None if stats is None else tuple(t[0] for t in _stats_tensors(stats))
        self.classes = list(classes if classes is not None else table.classes)
        codes = {name: i for i, name in enumerate(self.classes)}
        self.targets = [codes.get(label, -1) for label in table.labels] if table.labels else [-1] * len(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def decode(self, index: int) -> np.ndarray:
        """Image `index` as uint8 (H, W, C)."""
        path = self.root / self.paths[index]
        try:
            return _decode(path, self.size, self.channels)
        except _Unreadable as err:
            raise DataError(f"image file '{self.paths[index]}' cannot be read: {err}") from None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = torch.from_numpy(self.decode(index)).permute(2, 0, 1).float().div_(255.0)
        if self._norm is not None:
            mean, std = self._norm
            x = (x - mean) / std
        return x, self.targets[index]


def loader(
    dataset: Dataset, batch_size: int, generator: torch.Generator, workers: int = 0, shuffle: bool = True
) -> DataLoader:
    """A DataLoader whose order and worker seeds all come from `generator`: one seed, one sequence of batches."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        num_workers=workers,
        worker_init_fn=_seed_worker if workers else None,
        persistent_workers=workers > 0,
    )


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker from the loader's generator; Python's and NumPy's generators follow it.
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


# ---------------------------------------------------------------- reading files


def _options(size: tuple[int, int] | None, mode: str, on_error: str, stream_bytes: int) -> _Options:
    if mode not in MODES:
        raise RecipeError(f"image mode {one_of(mode, MODES)}")
    if on_error not in ON_ERROR:
        raise RecipeError(f"image on_error {one_of(on_error, ON_ERROR)}")
    if size is not None:
        ok = len(size) == 2 and all(isinstance(s, int | np.integer) and s > 0 for s in size)
        if not ok:
            raise RecipeError(f"{SIZE_KEY} must be two positive integers [height, width], got {size!r}")
        size = (int(size[0]), int(size[1]))
    return _Options(size, mode, on_error, stream_bytes)


def _folder(root: str | Path) -> Path:
    root = Path(root)
    if not root.exists():
        raise DataError(f"image folder '{root}' not found")
    if not root.is_dir():
        raise DataError(f"image folder '{root}' is a file, expected a folder")
    return root


def _images_in(folder: Path, root: Path, recursive: bool = True) -> list[str]:
    """Image files under `folder`, relative to root, in path order; hidden files and folders left out."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    keep = []
    for path in found:
        relative = path.relative_to(root)
        if path.suffix.lower() in SUFFIXES and path.is_file() and not any(p.startswith(".") for p in relative.parts):
            keep.append(relative.as_posix())
    return sorted(keep)


def _read(root: Path, files: list[str], labels: list[str] | None, options: _Options) -> ImageTable:
    headers, skipped = _scan(root, files, options.on_error)
    if not headers:
        raise DataError(f"no readable images in '{root}' ({plural(len(skipped), 'file')} skipped)")
    channels = _channels(headers, options.mode)
    size = options.size or _common_size(headers, files)
    table = ImageTable(None, None, [files[h.index] for h in headers], skipped, str(root), size, channels)
    table.labels = None if labels is None else [labels[h.index] for h in headers]
    if len(headers) * size[0] * size[1] * channels <= options.stream_bytes:
        _decode_all(table, options.on_error)
    if labels is not None:
        _check_classes(root, labels, table.labels)
    if not table.paths:
        raise DataError(f"no readable images in '{root}' ({plural(len(skipped), 'file')} skipped)")
    return table


def _scan(root: Path, files: list[str], on_error: str) -> tuple[list[_Header], list[tuple[str, str]]]:
    """Each file's mode and upright size, from its header (pixels are not decoded here)."""
    from PIL import Image

    headers, skipped = [], []
    for index, name in enumerate(files):
        try:
            with Image.open(root / name) as img:
                headers.append(_Header(index, img.mode, _upright_size(img)))
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as err:
            _unreadable(name, _reason(err, root / name), on_error, skipped)
    return headers, skipped


def _upright_size(img: Image.Image) -> tuple[int, int]:
    width, height = img.size
    rotated = img.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # EXIF orientation: turned a quarter
    return (width, height) if rotated else (height, width)


def _reason(err: BaseException, path: Path) -> str:
    detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if isinstance(err, FileNotFoundError):
        return "not found"
    return detail.replace(f" {str(path)!r}", "").replace(f" {path}", "")


def _unreadable(name: str, reason: str, on_error: str, skipped: list[tuple[str, str]]) -> None:
    if on_error == "error":
        raise DataError(f"image file '{name}' cannot be read: {reason}")
    skipped.append((name, reason))


def _check_classes(root: Path, labels: list[str], kept: list[str]) -> None:
    """Every class keeps at least one image after unreadable files are skipped."""
    lost = sorted(set(labels) - set(kept))
    if lost:
        gone = labels.count(lost[0])
        raise DataError(
            f"class '{lost[0]}' in '{root}' has no readable images ({plural(gone, 'file')} skipped as unreadable)"
        )


def _channels(headers: list[_Header], mode: str) -> int:
    if mode == "auto":
        return 1 if all(h.mode in GRAY_MODES for h in headers) else 3
    return 1 if mode == "grayscale" else 3


def _common_size(headers: list[_Header], files: list[str]) -> tuple[int, int]:
    first = headers[0]
    for other in headers[1:]:
        if other.size != first.size:
            a, b = files[first.index], files[other.index]
            raise DataError(
                f"images differ in size: '{a}' is {_hw(first.size)} and '{b}' is {_hw(other.size)} "
                f"(height x width); set {SIZE_KEY} to resize and centre-crop them to one size"
            )
    return first.size


def _hw(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _decode_all(table: ImageTable, on_error: str) -> None:
    """Every image into one uint8 array; with on_error 'skip', images that fail to decode are left out."""
    h, w = table.size
    pixels = np.empty((len(table.paths), h, w, table.channels), dtype=np.uint8)
    kept = []
    for i, name in enumerate(table.paths):
        try:
            pixels[len(kept)] = _decode(Path(table.root) / name, table.size, table.channels)
            kept.append(i)
        except _Unreadable as err:
            _unreadable(name, str(err), on_error, table.skipped)
    table.pixels = pixels[: len(kept)]
    table.paths = [table.paths[i] for i in kept]
    if table.labels is not None:
        table.labels = [table.labels[i] for i in kept]


def decode_bytes(data: bytes, size: tuple[int, int], channels: int) -> np.ndarray:
    """An image file's bytes (e.g. sent to a server) as uint8 (H, W, C), read as a file on disk is;
    ValueError saying why when they are not an image."""
    import io

    try:
        return _decode(io.BytesIO(data), size, channels)  # type: ignore[arg-type]
    except _Unreadable as err:
        raise ValueError(f"not an image file Strata can read: {err}") from None


def _decode(path: Path, size: tuple[int, int], channels: int) -> np.ndarray:
    """One image as uint8 (H, W, C): upright, converted, resized to cover `size` and centre-cropped."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            upright = ImageOps.exif_transpose(img)
            image = _fit(upright.convert("L" if channels == 1 else "RGB"), size)
            pixels = np.array(image, dtype=np.uint8)  # a writable copy
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as err:
        raise _Unreadable(_reason(err, path)) from None
    if pixels.shape[:2] != size:
        raise _Unreadable(f"is {_hw(pixels.shape[:2])}, expected {_hw(size)} (height x width); set {SIZE_KEY}")
    return pixels.reshape(*size, channels)


def _fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize (bilinear, antialiased) so the image covers (height, width), then crop the centre."""
    from PIL import Image

    height, width = size
    if image.size == (width, height):
        return image
    factor = max(height / image.height, width / image.width)
    new_w, new_h = max(width, round(image.width * factor)), max(height, round(image.height * factor))
    if (new_w, new_h) != image.size:
        image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left, top = (new_w - width) // 2, (new_h - height) // 2
    return image.crop((left, top, left + width, top + height))


# ---------------------------------------------------------------- arrays


def _load_arrays(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The image array and the labels (None when absent): a .npy file's array, or an .npz file's keys."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return loaded, None
        with loaded:
            keys = list(loaded.keys())
            x_key = next((k for k in X_KEYS if k in keys), None)
            y_key = next((k for k in Y_KEYS if k in keys), None)
            x = None if x_key is None else loaded[x_key]
            y = None if y_key is None else loaded[y_key]
    except (OSError, ValueError, EOFError) as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"array file '{path}' cannot be read as NumPy: {detail}") from None
    if x is None:
        raise DataError(
            f"array file '{path}' has no image array: expected a key {', '.join(X_KEYS[:-1])} or {X_KEYS[-1]} "
            f"(keys found: {', '.join(keys) or 'none'})"
        )
    return x, y


def _as_nhwc(x: np.ndarray, path: Path) -> np.ndarray:
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or not len(x):
        raise DataError(f"array file '{path}': expected images shaped (N, H, W) or (N, H, W, C), got {x.shape}")
    if x.shape[1] in (1, 3) and x.shape[3] not in (1, 3, 4):
        raise DataError(
            f"array file '{path}': shape {x.shape} looks channels-first; expected (N, H, W, C) "
            f"(use x.transpose(0, 2, 3, 1))"
        )
    return x


def _pixel_values(x: np.ndarray, path: Path) -> tuple[np.ndarray, float]:
    """uint8 kept (scale 255); other integers in [0, 255] made uint8; floats made float32 with their scale."""
    if x.dtype == np.uint8:
        return x, 255.0
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)) or x.dtype == bool:
        raise DataError(f"array file '{path}': pixel values of type {x.dtype}; expected uint8 or float")
    bad = int(np.count_nonzero(~np.isfinite(x))) if np.issubdtype(x.dtype, np.floating) else 0
    if bad:
        raise DataError(f"array file '{path}' has {plural(bad, 'non-finite pixel value')} (NaN or infinite)")
    low, high = float(x.min()), float(x.max())
    if low < 0 or high > 255:
        raise DataError(
            f"array file '{path}': pixel values from {low:g} to {high:g}; "
            f"expected uint8, or floats in [0, 1] or [0, 255]"
        )
    if np.issubdtype(x.dtype, np.integer):
        return x.astype(np.uint8), 255.0
    return x.astype(np.float32, copy=False), pixel_scale(x)


def _label_strings(y: np.ndarray, n: int, path: Path) -> list[str]:
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"array file '{path}': {n} images but labels shaped {y.shape}; expected ({n},)")
    if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    return [str(v) for v in y.tolist()]


# ---------------------------------------------------------------- chunks


def _positions(rows: np.ndarray, n: int) -> np.ndarray:
    rows = np.asarray(rows)
    if rows.dtype == bool:
        if len(rows) != n:
            raise DataError(f"a row mask of length {len(rows)} for {plural(n, 'image')}")
        return np.flatnonzero(rows)
    return rows.astype(np.int64, copy=False)


def _chunk_rows(pixels: np.ndarray | ImageFolderDataset) -> int:
    if isinstance(pixels, ImageFolderDataset):
        per_row = pixels.size[0] * pixels.size[1] * pixels.channels * 4
    else:
        per_row = max(1, int(np.prod(pixels.shape[1:]))) * 4
    return max(1, CHUNK_BYTES // per_row)


def _chunks(
    pixels: np.ndarray | ImageFolderDataset, rows: np.ndarray, scale: float | None
) -> Iterator[tuple[int, np.ndarray]]:
    """(start, float32 (k, H, W, C) chunk) over `rows`, on the [0, 1] scale."""
    streamed = isinstance(pixels, ImageFolderDataset)
    divide = np.float32(255.0 if streamed else scale if scale is not None else pixel_scale(pixels))
    step = _chunk_rows(pixels)
    for start in range(0, len(rows), step):
        part = rows[start : start + step]
        chunk = np.stack([pixels.decode(int(i)) for i in part]) if streamed else pixels[part]
        yield start, chunk.astype(np.float32) / divide


def _check_channels(pixels: np.ndarray, stats: dict[str, list[float]]) -> tuple[int, int, int, int]:
    if pixels.ndim != 4:
        raise DataError(f"images must be shaped (N, H, W, C), got {pixels.shape}")
    if pixels.shape[3] != len(stats["mean"]):
        raise DataError(
            f"images have {plural(pixels.shape[3], 'channel')} but the channel statistics have "
            f"{len(stats['mean'])} (fitted on other images)"
        )
    n, h, w, c = pixels.shape
    return n, h, w, c


def _stats_tensors(stats: dict[str, list[float]]) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(stats["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(stats["std"], dtype=torch.float32).view(1, -1, 1, 1)
    return mean, std
