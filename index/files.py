"""Writing a file whole or not at all, readable by whoever the umask lets read it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, text: str) -> None:
    """A hidden temporary beside `path` (no suffix any reader looks for), then a rename: a reader
    sees the old file or the new one, never half of one, whatever happens meanwhile."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            # mkstemp makes the file 0600; it is meant for whoever may read its folder.
            os.fchmod(file.fileno(), 0o666 & ~umask())
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
