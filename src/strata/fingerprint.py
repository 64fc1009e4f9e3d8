"""What identifies a run: package versions, platform, threads, git state, and content hashes.

The recipe hash (`Recipe.hash`) and the data hash (`data.sources.frame_hash`) live with what they
hash; this module adds the environment and the hashes of a trained model's weights and schema.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from strata.features.pipeline import Pipeline

PACKAGES = ("strata", "torch", "numpy", "pandas", "scikit-learn", "mlflow")


def environment() -> dict[str, Any]:
    """Python, platform, torch's thread count and the versions of the packages that shape a model."""
    import torch

    out: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    out["torch_threads"] = torch.get_num_threads()
    return out


def git_state(folder: Path | None = None) -> dict[str, Any] | None:
    """{"commit", "dirty"} of the git work tree around `folder` (the current directory), or None.

    `dirty` counts changes to tracked files only: untracked outputs (models/, strata-runs/) do not
    make a checkout dirty.
    """

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=folder or Path.cwd(), capture_output=True, text=True, timeout=10)
        if done.returncode:
            raise OSError(done.stderr.strip())
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):  # no git, not a repository, no commit yet
        return None
    return {"commit": commit, "dirty": dirty}


def weights_hash(state: dict[str, torch.Tensor]) -> str:
    """Hash of every tensor's name, dtype, shape and bytes: equal hashes mean bit-identical weights."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]


def schema_hash(pipeline: Pipeline) -> str:
    """Hash of what a caller must send and gets back: input names and types, targets, task, classes."""
    schema = {
        "inputs": [[c["name"], c["kind"]] for c in pipeline.columns],
        "targets": pipeline.target["columns"],
        "task": pipeline.task,
        "classes": [str(c) for c in pipeline.target.get("classes", [])],
    }
    return hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()[:16]
