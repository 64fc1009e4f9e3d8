"""Writing one file so that a reader never sees half of it, and a path that cannot be written is a
one-line error naming it (bundles, which are folders, have their own exchange in bundle.py)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from strata.errors import StrataError


def write_atomically(out: Path, content: bytes | str) -> None:
    """Write `content` to `out` through a hidden partial file and one rename. The partial file reaches
    the disk before the rename (fsync), so after a power cut `out` is the old content or the new."""
    if out.is_dir():
        raise StrataError(f"'{out}' is a folder; a file name was expected")
    partial = out.with_name(f".{out.name}.partial")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, out)
    except OSError as err:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise StrataError(f"cannot write '{out}': {err.strerror or err}") from None
