"""Files written atomically: under a temporary name beside the target, then renamed into place.

A reader (or the next start after a crash) sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "wb", *, create_folder: bool = True) -> Iterator[IO[Any]]:
    """Open a temporary file beside `path` for writing; when the block ends without an error it replaces
    `path`, otherwise it is removed and `path` is left as it was. `create_folder=False`: a missing folder
    is an error (FileNotFoundError), for places a person chose."""
    path = Path(path)
    if create_folder:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        encoding = None if "b" in mode else "utf-8"
        with open(fd, mode, encoding=encoding) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str, *, create_folder: bool = True) -> Path:
    """Write `text` (UTF-8) to `path` atomically; returns the path."""
    with atomic_file(path, "w", create_folder=create_folder) as fh:
        fh.write(text)
    return Path(path)
