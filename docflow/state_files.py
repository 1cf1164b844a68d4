"""Local state files readable by their owner only: the directory under
``DOCFLOW_VAR_DIR`` (0700) and the SQLite database with its WAL, shared-memory and
journal files (0600).

Why here and not a process umask: a umask is process-wide, so it would also make
what a web node must share with other users (collected static files served by the
proxy, exports handed to an operator) unreadable; and it would not fix files an
earlier run left 0644. Instead each creator of state asks for private modes:

- settings create ``VAR_DIR`` with ``private_directory_ensure`` when they are first
  imported, before anything writes there (every process — migrate, runserver,
  qcluster, the simulator, tests — imports them first, so whichever process starts
  first creates it 0700);
- the SQLite backend (``docflow.sqlite_backend``) calls ``sqlite_database_prepare``
  before it opens the file: the database is created 0600 by us, not 0644 by SQLite,
  and SQLite creates its ``-wal``, ``-shm`` and ``-journal`` files with the mode of
  the database file, so they are 0600 from their first byte;
- the payload storage (``FileSystemStorage`` with ``file_permissions_mode`` 0600 and
  ``directory_permissions_mode`` 0700 in settings) and the development secrets file
  (``docflow.configuration``) do the same for theirs.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIRECTORY_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# The files SQLite keeps beside a database (WAL mode, and rollback journals).
SQLITE_COMPANION_SUFFIXES = ("-wal", "-shm", "-journal")


def _tighten(path: Path, mode: int) -> None:
    """Set ``mode`` on a file or directory of ours that is looser (never on one we do
    not own, nor on a shared sticky directory such as /tmp)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if info.st_uid != os.geteuid() or info.st_mode & stat.S_ISVTX:
        return
    if stat.S_IMODE(info.st_mode) != mode:
        path.chmod(mode)


def private_directory_ensure(path: str | os.PathLike, *, tighten: bool = True) -> Path:
    """Create ``path`` and any missing parent with mode 0700 (whatever the umask); an
    existing ``path`` of ours is brought to 0700 when ``tighten``."""
    path = Path(path)
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIRECTORY_MODE)
        except FileExistsError:
            continue  # another process made it first: it is checked below
        # mkdir's mode is filtered by the umask; say it exactly.
        directory.chmod(PRIVATE_DIRECTORY_MODE)
    if tighten:
        _tighten(path, PRIVATE_DIRECTORY_MODE)
    return path


def sqlite_database_prepare(path: str | os.PathLike) -> Path:
    """Before SQLite opens ``path``: its directory exists (made 0700 if missing), the
    database file exists with mode 0600 (created empty by us if missing: SQLite takes
    an empty file as an empty database), and files left looser are tightened."""
    path = Path(path)
    private_directory_ensure(path.parent, tighten=False)
    try:
        descriptor = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE
        )
    except FileExistsError:
        pass
    else:
        os.close(descriptor)
    for candidate in (path, *(Path(f"{path}{s}") for s in SQLITE_COMPANION_SUFFIXES)):
        _tighten(candidate, PRIVATE_FILE_MODE)
    return path
