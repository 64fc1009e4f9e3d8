"""Crash-safe training checkpoints, and finding the last good one to resume from.

A checkpoint is two files in its folder: `epoch-NNNNN.safetensors` (every tensor: weights,
optimizer moments, RNG states, early stopping's best weights) and `epoch-NNNNN.json` (the rest,
with the sha256 of the tensor file and of the JSON itself). Each is written to a partial file
and renamed, the JSON last, so a reader never sees half of one; the JSON is the commit. Nothing
is pickled: a checkpoint loads without running code from the file.

The last `KEEP` checkpoints are kept: when the newest is truncated or corrupt (a disk filled up,
a copy was cut short) the one before it is used, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from strata._files import write_atomically
from strata.errors import DataError, RecipeError, StrataError, StrataWarning
from strata.training.callbacks import Callback

if TYPE_CHECKING:
    from strata.recipe import Recipe
    from strata.training.trainer import Trainer

FORMAT = 1
KEEP = 2
_NAME = re.compile(r"epoch-(\d+)\.json")


class CheckpointError(StrataError):
    """No usable checkpoint where one was expected."""


@dataclass
class Checkpoint:
    path: Path  # the JSON file
    epoch: int
    meta: dict[str, Any]  # recipe and data hashes, the tracked run, versions
    state: dict[str, Any]  # Trainer.state_dict(), tensors and all


@dataclass
class Saving:
    """Where a run keeps its checkpoints, how often it writes them, and what it resumes from."""

    folder: Path
    every: int = 1
    meta: dict[str, Any] | None = None
    resume: Checkpoint | None = None

    def done(self) -> None:
        """The run finished: its checkpoints have served."""
        clear(self.folder)


# ----------------------------------------------------------------------------------- encoding
def encode(value: Any, name: str, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON for `value`, its tensors moved into `tensors` under dotted names. Dicts with other
    than string keys (an optimizer's state is keyed by parameter number) and tuples keep their type."""
    if isinstance(value, torch.Tensor):
        tensors[name] = value.detach().cpu().contiguous()
        return {"$tensor": name}
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: encode(v, f"{name}.{k}", tensors) for k, v in value.items()}
        return {"$items": [[k, encode(v, f"{name}.{k}", tensors)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"$tuple": [encode(v, f"{name}.{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [encode(v, f"{name}.{i}", tensors) for i, v in enumerate(value)]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"checkpoint: cannot store {type(value).__name__} at {name}")


def decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """What `encode` was given back."""
    if isinstance(value, list):
        return [decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "$tensor" in value:
        return tensors[value["$tensor"]]
    if "$items" in value:
        return {k: decode(v, tensors) for k, v in value["$items"]}
    if "$tuple" in value:
        return tuple(decode(v, tensors) for v in value["$tuple"])
    return {k: decode(v, tensors) for k, v in value.items()}


def _unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory (tied weights): such a one is copied."""
    seen: set[int] = set()
    out = {}
    for name, t in tensors.items():
        ptr = t.untyped_storage().data_ptr() if t.numel() else -1
        out[name] = t.clone() if ptr in seen else t
        seen.add(ptr)
    return out


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_digest(record: dict[str, Any]) -> str:
    return _digest(json.dumps(record, sort_keys=True).encode())


# ------------------------------------------------------------------------------ write and read
def save(folder: Path, epoch: int, state: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write one checkpoint (tensors first, the JSON that vouches for them last); keep the last KEEP."""
    from safetensors.torch import save as to_bytes

    tensors: dict[str, torch.Tensor] = {}
    record = {"format": FORMAT, "epoch": epoch, "meta": meta, "state": encode(state, "state", tensors)}
    blob = to_bytes(_unshared(tensors))
    stem = f"epoch-{epoch:05d}"
    record["tensors"] = {"file": f"{stem}.safetensors", "bytes": len(blob), "sha256": _digest(blob)}
    record["sha256"] = _json_digest(record)
    write_atomically(folder / f"{stem}.safetensors", blob)
    write_atomically(folder / f"{stem}.json", json.dumps(record))
    for old in _listed(folder)[KEEP:]:
        remove(old)
    return folder / f"{stem}.json"


def _listed(folder: Path) -> list[Path]:
    """The checkpoint JSON files in `folder`, newest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.fullmatch(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def remove(json_file: Path) -> None:
    """One checkpoint's two files (the JSON first: a tensor file without it is never read)."""
    json_file.unlink(missing_ok=True)
    json_file.with_suffix(".safetensors").unlink(missing_ok=True)


def clear(folder: Path) -> int:
    """Remove every checkpoint in `folder` (and the folder, when that leaves it empty); how many."""
    listed = _listed(folder)
    for path in listed:
        remove(path)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    return len(listed)


def read(path: Path) -> Checkpoint:
    """One checkpoint, verified: the JSON's own hash, then the tensor file's size and hash."""
    from safetensors.torch import load as from_bytes

    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"'{path}' cannot be read ({err})") from None
    claimed = record.pop("sha256", None) if isinstance(record, dict) else None
    if claimed is None or claimed != _json_digest(record):
        raise CheckpointError(f"'{path}' is damaged (its content does not match its sha256)")
    if record.get("format") != FORMAT:
        raise CheckpointError(f"'{path}' has format {record.get('format')!r}; this Strata reads {FORMAT}")
    blob_path = path.parent / record["tensors"]["file"]
    try:
        blob = blob_path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"'{blob_path}' cannot be read ({err.strerror or err})") from None
    if len(blob) != record["tensors"]["bytes"] or _digest(blob) != record["tensors"]["sha256"]:
        raise CheckpointError(f"'{blob_path}' is truncated or damaged (size or sha256 differ from '{path.name}')")
    state = decode(record["state"], from_bytes(blob))
    return Checkpoint(path, int(record["epoch"]), record["meta"], state)


def latest(folder: Path) -> Checkpoint:
    """The newest checkpoint that verifies; a damaged newer one is passed over with a warning."""
    listed = _listed(folder)
    if not listed:
        raise CheckpointError(f"no checkpoint in '{folder}' (epoch-*.json): nothing to resume")
    problems = []
    for path in listed:
        try:
            found = read(path)
        except CheckpointError as err:
            problems.append(str(err))
            continue
        for problem in problems:
            warnings.warn(f"{problem}; resuming from epoch {found.epoch} instead", StrataWarning, stacklevel=2)
        return found
    raise CheckpointError(f"no usable checkpoint in '{folder}': {'; '.join(problems)}")


def checkpoints(folder: Path) -> Iterator[Path]:
    """The checkpoint files in `folder`, newest first (for tests and listings)."""
    yield from _listed(folder)


# ------------------------------------------------------------------------------------ planning
def plan(recipe: Recipe, out: Path | None, folder: Path | None, resume: str | Path | None) -> Saving | None:
    """Where this run's checkpoints go: `folder` when given, else beside the bundle
    (`<out>.checkpoints/`), else `strata-runs/checkpoints/<name>/` when the recipe asks for
    checkpoints; none for an in-memory run that does not ask. `resume` finds the folder, and its
    last good checkpoint, from a folder or a tracked run's id."""
    cfg = recipe.train.checkpoint
    if cfg is False:
        if resume is not None:
            raise RecipeError("--resume: this recipe says train.checkpoint: false; there is nothing to resume from")
        return None
    every = cfg.every if cfg else 1
    if resume is not None:
        where = locate(resume, recipe.track.uri)
        found = latest(where)
        if found.meta.get("recipe") != recipe.hash():
            raise RecipeError(
                f"--resume: the checkpoint in '{where}' is of another recipe (hash {found.meta.get('recipe')}, "
                f"this one {recipe.hash()}); resume with the recipe and --set options the run started with"
            )
        return Saving(where, every, resume=found)
    if folder is None and out is not None:
        folder = out.with_name(f"{out.name}.checkpoints")  # beside the bundle: saving it replaces its folder
    if folder is None and cfg is not None:
        folder = Path("strata-runs") / "checkpoints" / recipe.display_name
    return Saving(Path(folder), every) if folder is not None else None


def locate(ref: str | Path, uri: str | None) -> Path:
    """The checkpoint folder `ref` names: the folder itself, a bundle destination beside which the
    checkpoints are, or a tracked run (its `strata.checkpoints` tag)."""
    path = Path(ref)
    for candidate in (path, path.with_name(f"{path.name}.checkpoints")):
        if _listed(candidate):
            return candidate
    if path.exists() or any(sep in str(ref) for sep in "/\\"):
        raise CheckpointError(f"--resume: no checkpoint (epoch-*.json) in '{path}' nor in '{path}.checkpoints'")
    from strata.errors import StrataError
    from strata.track.store import Store

    try:
        run = Store.open(uri).run(str(ref))
    except StrataError:  # neither a folder nor a run: say both were looked for
        raise CheckpointError(f"--resume '{ref}': no checkpoint folder '{path}' or '{path}.checkpoints', and no "
                              "tracked run with that id") from None  # fmt: skip
    tagged = run.data.tags.get("strata.checkpoints")
    if not tagged:
        raise CheckpointError(f"--resume: run {run.info.run_id[:12]} kept no checkpoints (no strata.checkpoints tag)")
    return Path(tagged)


def check_data(saving: Saving | None, data_hash: str) -> None:
    """A resumed run must see the rows the interrupted one trained on."""
    if saving is None or saving.resume is None:
        return
    was = saving.resume.meta.get("data")
    if was != data_hash:
        raise DataError(f"--resume: the data differs from the data of the checkpoint in '{saving.folder}' "
                        f"(data hash {data_hash}, checkpoint {was}); resume with the same data")  # fmt: skip


# ----------------------------------------------------------------------------------- callback
class Checkpointer(Callback):
    """Save the trainer's state every `every` epochs, after the last and when training stops early.
    It must come after the callbacks whose state it saves (early stopping), so it goes last."""

    def __init__(self, saving: Saving):
        self.saving = saving

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        epoch = int(logs["epoch"])
        if epoch % self.saving.every == 0 or epoch == trainer.cfg.epochs or trainer.stop_reason:
            save(self.saving.folder, epoch, trainer.state_dict(), self.saving.meta or {})
