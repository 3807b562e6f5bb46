"""Stores on disk: atomic writes, format versions and provenance.

Every file varfx writes is first written under a temporary name in the same
directory and renamed into place once complete, so a kill at any moment leaves either
the old file or the new one, never a truncated file.

A *dataset* is a directory::

    DATASET/dataset.h5     harmonised variants (+ LD reference data), written by ingest
    DATASET/windows.h5     per-window LD factors, written by precompute-ld (or, with
                           --shards chrom, the index of the shards below)
    DATASET/windows.shards/chrC.h5  one chromosome's windows (a sharded store)
    DATASET/windows.parts/ per-window part files while precompute-ld runs (resume state)

This package is the only code that knows these layouts: :mod:`varfx.store.dataset`
opens and validates ``dataset.h5``, :mod:`varfx.store.windows` opens, validates, reads
and writes ``windows.h5`` (and checks that it was computed from the ``dataset.h5``
beside it), and :mod:`varfx.store.h5` is the one HDF5 writer of all of them
(:func:`~varfx.store.h5.guarded_h5`: a full disk is one clean error, never HDF5 noise).
Stages read through it and never through each other.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

DATASET_FORMAT = "varfx-dataset"
DATASET_VERSION = 1
WINDOWS_FORMAT = "varfx-windows"
#: 2: windows.h5 records the dataset it was computed from (dataset_n_variants,
#: dataset_sha256) and is refused when they do not match the dataset.h5 beside it.
WINDOWS_VERSION = 2
#: 3: a sharded store (``precompute-ld --shards chrom``): windows.h5 is the index of
#: ``windows.shards/chrC.h5``, one file per chromosome.  Unsharded stores are still
#: written as version 2 (so that an older varfx keeps reading them); version 3 is
#: what an older varfx, which would not find the windows, refuses as "newer".
WINDOWS_SHARDED_VERSION = 3
#: The directory of a sharded store's shard files (beside windows.h5).
WINDOWS_SHARDS = "windows.shards"
SHARD_FORMAT = "varfx-windows-shard"
SHARD_VERSION = 1

DATASET_FILE = "dataset.h5"
WINDOWS_FILE = "windows.h5"
WINDOWS_PARTS = "windows.parts"


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On an exception the temporary file (or directory) is removed and ``path`` is left
    untouched.
    """
    path = Path(path)
    created = _make_parents(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
        os.close(fd)
        os.unlink(tmp)
        tmp = Path(tmp)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        _remove_empty(created)
        raise


def _make_parents(directory: Path) -> list[Path]:
    """``mkdir -p directory``; returns the directories it created, deepest first, so a
    failed write can remove them again (a failed command leaves no empty directory)."""
    missing = []
    d = directory
    while not d.exists() and d != d.parent:
        missing.append(d)
        d = d.parent
    directory.mkdir(parents=True, exist_ok=True)
    return missing


def _remove_empty(directories) -> None:
    for d in directories:
        try:
            d.rmdir()
        except OSError:
            break  # not empty (someone else wrote there) or already gone


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a temporary directory next to ``path``; move it onto ``path`` on success.

    An existing ``path`` is replaced only once the new directory is complete.
    """
    path = Path(path)
    created = _make_parents(path.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except BaseException:
        _remove_empty(created)
        raise
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; a dataset is an ordinary directory
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise


_OS_ERRNO_TEXT = {
    "No space left on device": "ENOSPC",
    "Read-only file system": "EROFS",
    "Permission denied": "EACCES",
    "Disk quota exceeded": "EDQUOT",
}


def hdf5_os_error(exc: BaseException, path=None) -> OSError | None:
    """The OSError behind an HDF5 write failure, or None when ``exc`` is not one.

    h5py reports a write that the filesystem refused (a full disk) while flushing or
    closing a file as a RuntimeError whose text holds the errno message and the file
    name; as an OSError it gets the one-line message every other unwritable
    destination gets."""
    import errno
    import re

    if isinstance(exc, OSError) or not isinstance(exc, RuntimeError):
        return None
    text = str(exc)
    for message, name in _OS_ERRNO_TEXT.items():
        if message in text:
            m = re.search(r"filename = '([^']*)'", text)
            code = getattr(errno, name)
            return OSError(code, os.strerror(code), m.group(1) if m else (str(path) if path else None))
    return None


def sha256_file(path, limit: int | None = None) -> str:
    """SHA-256 of a file (of its first ``limit`` bytes when given), for provenance."""
    h = hashlib.sha256()
    done = 0
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(1 << 20)
            if not chunk:
                break
            if limit is not None and done + len(chunk) > limit:
                chunk = chunk[: limit - done]
            h.update(chunk)
            done += len(chunk)
            if limit is not None and done >= limit:
                break
    return h.hexdigest()


#: Inputs larger than this are hashed over their first HASH_LIMIT bytes only (provenance
#: of a genome-wide file must not take longer than reading it).
HASH_FULL_MAX = 1 << 30
HASH_LIMIT = 64 << 20


def input_record(path, role: str | None = None) -> dict:
    """Provenance of one input file: role, absolute path, size and SHA-256."""
    size = os.path.getsize(path)
    rec = {"role": role, "path": str(Path(path).resolve())} if role is not None else {}
    rec["bytes"] = int(size)
    if size > HASH_FULL_MAX:
        rec["sha256"] = sha256_file(path, limit=HASH_LIMIT)
        rec["sha256_of_first_bytes"] = HASH_LIMIT
    else:
        rec["sha256"] = sha256_file(path)
    return rec


def write_json_atomic(path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def check_format(h5, expected_format: str, expected_version: int, path, rebuild: str | None = None,
                 also: tuple = ()) -> None:
    """Raise a UserError unless an open HDF5 file carries the expected format/version.

    ``rebuild``: the command that rebuilds the file (named in the message); ``also``:
    older versions this varfx reads too (``expected_version`` is the newest)."""
    from ..errors import UserError

    hint = f"; rebuild it with `{rebuild}`" if rebuild else ""
    fmt = h5.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    if fmt != expected_format:
        raise UserError(f"not a {expected_format} file (format attribute is {fmt!r}){hint}", path=path)
    try:
        version = int(h5.attrs.get("format_version", -1))
    except (TypeError, ValueError):
        version = -1
    if version > expected_version:
        raise UserError(
            f"{expected_format} format version {version} was written by a newer varfx; this varfx reads "
            f"version {expected_version}: upgrade varfx{' or rebuild it with `' + rebuild + '`' if rebuild else ''}",
            path=path,
        )
    if version != expected_version and version not in also:
        reads = ", ".join(str(v) for v in sorted({*also, expected_version}))
        raise UserError(
            f"{expected_format} format version {version}; this varfx reads version {reads}{hint}",
            path=path,
        )
