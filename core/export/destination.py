"""Where a command may write a path the user gave (`export -o`, `report -o`, `predict -o`): the one guard.

Nothing a command writes may land on Protolab's own data (PROTOLAB_HOME: the database, datasets/, runs/; the
SQLite file of DATABASE_URL wherever it is), and `export --force` replaces only a folder an earlier export wrote,
recognised by the marker file it leaves.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from core.errors import ProtolabError
from core.settings import load_settings

log = logging.getLogger(__name__)

EXPORT_MARKER = ".protolab-export"  # written into every export folder: what `--force` may replace
_SQLITE_SIDE_FILES = ("", "-wal", "-shm", "-journal")


class OutputPathError(ProtolabError):
    """A user-given output path that would overwrite Protolab's data or a folder it did not write."""


def protected_paths() -> list[Path]:
    """The data folder, and the SQLite database files when DATABASE_URL keeps them elsewhere."""
    settings = load_settings()
    paths = [settings.home]
    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        return paths
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        db = Path(url.database).expanduser().resolve()
        paths += [db.with_name(db.name + suffix) for suffix in _SQLITE_SIDE_FILES]
    return paths


def check_output(path: Path | str) -> Path:
    """`path` resolved (links followed), or OutputPathError if writing or replacing it could touch Protolab's
    data: it is the data folder, lies inside it, holds it, or is the database file."""
    target = Path(path).expanduser().resolve()
    for protected in protected_paths():
        if target == protected or protected in target.parents:
            raise OutputPathError(f"{path}: refusing to write inside Protolab's data ({protected}); "
                                  "pick an output path outside PROTOLAB_HOME")
        if target in protected.parents:
            raise OutputPathError(f"{path}: refusing to write there: it holds Protolab's data ({protected}); "
                                  "pick a new folder outside PROTOLAB_HOME")
    return target


def check_export_folder(path: Path | str, *, replace: bool) -> Path:
    """The resolved folder an export may be written to: new, empty, or (with `replace`) an earlier export."""
    target = check_output(path)
    if not target.exists():
        return target
    if not target.is_dir():
        raise OutputPathError(f"{path} already exists and is not an empty folder; pick a new -o folder")
    if not any(target.iterdir()):
        return target
    if not replace:
        raise OutputPathError(f"{path} already exists and is not an empty folder; pick a new -o folder "
                              "(--force replaces an earlier export)")
    if not (target / EXPORT_MARKER).is_file():
        raise OutputPathError(f"{path} holds files protolab export did not write (no {EXPORT_MARKER} marker); "
                              "--force only replaces an earlier export, so pick a new -o folder")
    log.info("replacing the earlier export in %s", target)
    return target
