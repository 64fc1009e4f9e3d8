"""Data-parallel training on PyTorch's own engine: torchrun starts the processes, DistributedDataParallel
synchronises the gradients. In a single process nothing here does anything.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK in each process it starts; `session` joins them in one
process group (gloo for CPU tensors, nccl for CUDA ones). Then each process

- trains on its slice of every global batch (`strata.data.batches.ShardedSet`): together the
  processes see exactly the batches of one process, in the same number of steps;
- sums its gradient with the others', weighted by its share of the global batch (`wrap`): the
  single-process gradient of a mean loss, an uneven last batch included;
- adds its rows' train loss into the epoch's, and takes rank 0's epoch row: rank 0 alone runs the
  validation, so every process sees the same metrics and early stopping stops them at the same epoch
  (`Synchronise`);
- leaves logging, printing, plots and the bundle to rank 0 (`strata.api.train`).

>>> is_main(), world_size()  # not started by torchrun
(True, 1)
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from strata.errors import DataError, RecipeError, StrataError
from strata.training.callbacks import Callback

if TYPE_CHECKING:
    from torch import nn

    from strata.data.batches import ShardedSet
    from strata.recipe import Recipe
    from strata.training.trainer import Trainer


# ------------------------------------------------------------------------------ process group
def launched() -> bool:
    """Whether torchrun started this process as one of several (it sets WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _group() -> Any:
    """torch.distributed when this process is in an initialised group, else None."""
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def active() -> bool:
    """Whether this process trains together with others now."""
    dist = _group()
    return dist is not None and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank: the group's, else torchrun's RANK (0 when not launched by it)."""
    dist = _group()
    return dist.get_rank() if dist is not None else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    dist = _group()
    return dist.get_world_size() if dist is not None else int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """Rank 0: the process that logs, prints and writes the bundle."""
    return rank() == 0


def check_available() -> None:
    import torch.distributed as dist

    if not dist.is_available():
        raise StrataError("distributed training: this build of torch has no torch.distributed; train in one process")


@contextlib.contextmanager
def session() -> Iterator[None]:
    """The process group of the processes torchrun started, for the length of the block; nothing in a
    single process, or when the caller has made a group already (then it is the caller's to end)."""
    if not launched() or _group() is not None:
        yield
        return
    check_available()
    import torch
    import torch.distributed as dist

    backend = "gloo"
    if torch.cuda.is_available() and dist.is_nccl_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))  # one GPU per process on a node
        backend = "cpu:gloo,cuda:nccl"  # each tensor through the backend of its device
    dist.init_process_group(backend)
    try:
        yield
    finally:
        dist.destroy_process_group()


def launch(nproc: int, args: list[str]) -> None:
    """Run `strata train ARGS` in `nproc` processes on this machine through torchrun (standalone: a
    free local port, so several runs on one machine do not collide) and wait for them. Each process
    gets an equal share of the physical cores as its torch threads, unless OMP_NUM_THREADS says."""
    if nproc < 1:
        raise StrataError(f"--nproc: the number of processes must be at least 1, got {nproc}")
    if launched():
        raise StrataError("--nproc: this process was started by torchrun already; leave out --nproc")
    check_available()
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    from strata._process import physical_cores

    config = parse_args(["--standalone", "--nproc-per-node", str(nproc), "-m", "strata", "train", *args])
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (physical_cores() or 1) // nproc))
    with _environment(OMP_NUM_THREADS=threads):
        try:
            run(config)
        except ChildFailedError as err:
            rank, failure = err.get_first_failure()
            raise StrataError(f"--nproc {nproc}: the training process of rank {rank} failed "
                              f"(exit status {failure.exitcode}); its messages are above") from None  # fmt: skip


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """os.environ with `values` for the processes started in the block, as it was afterwards."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def all_reduce_sum(values: list[float]) -> list[float]:
    """The sums over the processes of each process's `values` (float64, on the CPU)."""
    import torch
    import torch.distributed as dist

    total = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(total)
    return total.tolist()


def broadcast(obj: Any) -> Any:
    """Rank 0's `obj` (picklable), in every process."""
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# ------------------------------------------------------------------------------------ training
def data_parallel(recipe: Recipe, train: Any, val: Any) -> tuple[Any, Any, list[Callback]]:
    """This process's training set, validation set (rank 0's alone) and the callback that keeps the
    processes in step; in a single process the sets as they are and no callback."""
    if not active():
        return train, val, []
    from strata.data.batches import ShardedSet, TensorSet

    check_recipe(recipe)
    batch_size = recipe.train.batch_size
    if not isinstance(train, TensorSet):
        raise DataError("distributed training shards data held in memory; these images are streamed from "
                        "disk (too many to decode up front): train them in one process")  # fmt: skip
    shard = ShardedSet(train, rank(), world_size())
    if not shard.n_batches(batch_size):
        raise DataError(f"distributed training: {len(train)} training rows cannot give each of "
                        f"{shard.world} processes a row; use fewer processes (--nproc)")  # fmt: skip
    return shard, val if is_main() else None, [Synchronise(shard, batch_size)]


def check_recipe(recipe: Recipe) -> None:
    """What data-parallel training cannot do, said before any process starts."""
    if getattr(recipe.model, "unfreeze_every", None):
        raise RecipeError("model.unfreeze_every: gradual unfreezing changes which weights learn during training, "
                          "which DistributedDataParallel cannot follow; remove it or train in one process")  # fmt: skip


def wrap(model: nn.Module, data: Any) -> nn.Module:
    """DDP's wrapper of `model` when `data` is this process's shard, else `model` itself. Train
    through the wrapper; the model stays what is evaluated and saved (same parameters)."""
    from strata.data.batches import ShardedSet

    if not isinstance(data, ShardedSet):
        return model
    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    net.register_comm_hook(data, _weighted_sum)
    return net


def _weighted_sum(shard, bucket):  # unannotated: DDP checks the annotations and cannot resolve postponed ones
    """Sum of the processes' gradients, each weighted by its rows' share of the global batch. Each
    process's loss is a mean over its rows, so this is the single-process gradient even when the
    rows do not divide evenly (DDP's plain average would weight a short slice too much)."""
    import torch.distributed as dist

    grad = bucket.buffer().mul_(shard.share)
    return dist.all_reduce(grad, async_op=True).get_future().then(lambda fut: fut.value()[0])


def rank_seed(seed: int, rank: int) -> int:
    """A seed of this process's own, derived like the recipe's seeds; rank 0 keeps `seed`."""
    import numpy as np

    return seed if rank == 0 else int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


class Synchronise(Callback):
    """Keeps the processes of a data-parallel run in step. At each epoch's end: the train loss over
    all the processes' rows, then rank 0's row of metrics (it alone validates) and its stop reason in
    every process, so early stopping and the divergence check decide alike everywhere. First among
    the callbacks, so that the others see the synchronised row."""

    def __init__(self, shard: ShardedSet, batch_size: int):
        self.shard, self.rows = shard, shard.rows(batch_size)

    def on_train_begin(self, trainer: Trainer) -> None:
        # Dropout and augmentation draws of their own: with the same seed in every process, row j of
        # each process's slice would get the same dropout mask and the same crop.
        import torch

        rank = self.shard.rank
        torch.manual_seed(rank_seed(trainer.seeds.train, rank))
        trainer._augment_draws.manual_seed(rank_seed(trainer.seeds.data + 1, rank))

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        total, rows = all_reduce_sum([logs["train_loss"] * self.rows, self.rows])
        logs["train_loss"] = total / rows
        row, reason = broadcast((dict(logs), trainer.stop_reason))
        logs.clear()
        logs.update(row)  # in place: the trainer's history holds this dict
        trainer.stop_reason = reason
        loss = logs["train_loss"]
        if reason is None and not math.isfinite(loss):  # a process other than rank 0 diverged
            trainer.stop(f"training loss became {loss} in epoch {int(logs['epoch'])}: "
                         f"lower train.optimizer.lr or set train.clip")  # fmt: skip
