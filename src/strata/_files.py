"""Writing one file so that a reader never sees half of it, and a path that cannot be written is a
one-line error naming it (bundles, which are folders, have their own exchange in bundle.py)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from strata.errors import StrataError


def write_atomically(out: Path, content: bytes | str) -> None:
    """Write `content` to `out` through a hidden partial file and one rename."""
    if out.is_dir():
        raise StrataError(f"--out '{out}' is a folder; give a file name")
    partial = out.with_name(f".{out.name}.partial")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(content.encode() if isinstance(content, str) else content)
        os.replace(partial, out)
    except OSError as err:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise StrataError(f"cannot write '{out}': {err.strerror or err}") from None
