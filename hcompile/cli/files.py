"""Output-file policy shared by the commands: never lose what the user had silently."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

from hcompile.errors import UsageError

log = logging.getLogger("hcompile")


def check_output(path: Path, *, kind: str, force: bool, protected: list[Path]) -> None:
    """Refuse to write over an input file, or over a file that is not a ``kind`` output.

    ``kind`` is ``"artifact"`` or ``"npz"``: both are zip files, which is what an earlier
    hcompile run left there; replacing one is announced, anything else needs ``--force``.
    """
    resolved = path.resolve()
    for other in protected:
        if other.exists() and other.resolve() == resolved:
            raise UsageError(f"the output {path} is also an input of this command",
                             hint="choose another output path with -o/--output")
    if path.is_dir():
        raise UsageError(f"the output {path} is a directory", hint="give a file path")
    if not path.exists():
        return
    if force:
        log.info("replacing %s (--force)", path)
        return
    if not zipfile.is_zipfile(path):
        raise UsageError(f"{path} exists and is not an hcompile {kind}; not overwriting it",
                         hint="choose another output path, or pass --force to replace it")
    log.info("replacing existing %s %s", kind, path)
