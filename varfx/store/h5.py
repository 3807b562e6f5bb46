"""HDF5 files written so that a full disk is one clean error: :func:`guarded_h5`.

HDF5 must never see a failed ``write()``.  When the disk is full (or the filesystem
turns read-only) under a file h5py opened by name, HDF5 is left with metadata it can
never flush: every open object then fails again as it is freed, Python prints each one
("Exception ignored in ... __dealloc__"), and objects freed at exit can crash the
interpreter; the HDF5 library of that process stays unusable for later files.

So every store varfx writes (``dataset.h5``, the window part files and ``windows.h5``)
goes through h5py's file-object driver onto a :class:`GuardedFile`: the first failed
write is recorded and that write and every later one are kept in memory instead, so
HDF5 believes it succeeded and closes the file cleanly.  The writer calls :func:`guard`
between chunks, which stops it at the first chunk after the failure (so the memory kept
is at most one chunk's worth plus the metadata), and :func:`guarded_h5` then raises one
:class:`~varfx.errors.UserError` naming the destination.  The caller writes to a
temporary name (:func:`varfx.store.atomic_path` / :func:`~varfx.store.atomic_dir`),
which is removed on that error: nothing half-written is left behind.
"""

from __future__ import annotations

import contextlib
import errno as _errno
import io
import os
from pathlib import Path

from ..errors import UserError


class WriteFailed(Exception):
    """Raised by :func:`guard` between HDF5 calls once the file underneath could not be
    written; :func:`guarded_h5` turns it into the one-line :class:`UserError`."""


class GuardedFile(io.RawIOBase):
    """The raw file HDF5 writes through, which never lets a failed ``write()`` reach it.

    Reads see the bytes on disk overlaid with those kept in memory after a failure
    (HDF5 reads back its own metadata while it closes the file)."""

    def __init__(self, path: Path):
        self._fh = open(path, "w+b")
        self.path = Path(path)
        self.error: OSError | None = None
        self._overlay: dict[int, bytes] = {}  # offset -> bytes written after the failure
        self._pos = 0

    def readable(self):
        return True

    def writable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=0):
        if whence == 0:
            self._pos = offset
        elif whence == 1:
            self._pos += offset
        else:
            self._pos = max(self._size(), 0) + offset
        return self._pos

    def tell(self):
        return self._pos

    def _size(self):
        end = os.fstat(self._fh.fileno()).st_size
        for off, b in self._overlay.items():
            end = max(end, off + len(b))
        return end

    def readinto(self, buf):
        n = len(buf)
        self._fh.seek(self._pos)
        got = self._fh.read(n)
        data = bytearray(got) + bytearray(n - len(got))
        for off, b in self._overlay.items():  # bytes written after the failure win
            lo, hi = max(off, self._pos), min(off + len(b), self._pos + n)
            if lo < hi:
                data[lo - self._pos : hi - self._pos] = b[lo - off : hi - off]
        end = min(n, max(len(got), max((off + len(b) - self._pos for off, b in self._overlay.items()), default=0)))
        end = max(end, 0)
        buf[:end] = data[:end]
        self._pos += end
        return end

    def write(self, b):
        b = bytes(b)
        if self.error is None:
            try:
                self._fh.seek(self._pos)
                self._fh.write(b)
                # flushed at once: a full disk must fail here, in this call, not in a
                # later buffered flush that HDF5 would never hear of
                self._fh.flush()
            except OSError as exc:
                self.error = exc
        if self.error is not None:
            self._overlay[self._pos] = b
        self._pos += len(b)
        return len(b)

    def truncate(self, size=None):
        size = self._pos if size is None else size
        if self.error is None:
            try:
                self._fh.truncate(size)
            except OSError as exc:
                self.error = exc
        return size

    def flush(self):
        pass  # every write is flushed as it is made

    def check(self):
        """Raise :class:`WriteFailed` once a write has failed (call between chunks)."""
        if self.error is not None:
            raise WriteFailed()

    def close(self):
        try:
            self._fh.close()
        except OSError as exc:  # the final flush of a full disk
            if self.error is None:
                self.error = exc
        super().close()


_GUARDS: dict = {}  # HDF5 file id -> the check of its GuardedFile


def guard(obj) -> None:
    """Stop writing (raise :class:`WriteFailed`) once the file of ``obj`` (an open h5py
    file, group or dataset from :func:`guarded_h5`) could not be written; a no-op for a
    file opened otherwise.  Call it between chunks of a long write."""
    check = _GUARDS.get(obj.file.id.id)
    if check is not None:
        check()


@contextlib.contextmanager
def guarded_h5(path, dest, what: str = "the dataset", hint: str = "choose another destination"):
    """A new ``h5py.File`` at ``path`` written through :class:`GuardedFile`.

    A full disk, a read-only filesystem or a quota becomes one :class:`UserError`
    (``cannot write {what}: no space left on the device; ...``) naming ``dest`` (what
    the user asked to write: the dataset directory, ``windows.h5``), never HDF5 noise;
    ``hint`` says what to do.  ``path`` is left on disk for the caller's temporary-name
    context to remove."""
    import h5py

    sink = GuardedFile(Path(path))  # a read-only filesystem fails here, before HDF5
    try:
        f5 = h5py.File(sink, "w")
    except BaseException:
        with contextlib.suppress(Exception):
            sink.close()
        if sink.error is None:
            raise
        raise write_error(dest, sink.error, what, hint) from None
    key = f5.id.id
    _GUARDS[key] = sink.check
    try:
        try:
            yield f5
        except WriteFailed:
            pass  # the writer stopped at a guard: report the write error below
        f5.close()
        sink.close()
    except BaseException:
        with contextlib.suppress(Exception):
            f5.close()
        with contextlib.suppress(Exception):
            sink.close()
        if sink.error is None:
            raise
        # anything that went wrong after the disk filled up is a consequence of it
    finally:
        _GUARDS.pop(key, None)
    if sink.error is not None:
        raise write_error(dest, sink.error, what, hint) from None


def write_error(dest, exc: OSError, what: str = "the dataset", hint: str = "choose another destination") -> UserError:
    """The one-line error for a failed write of ``dest``."""
    code = exc.errno if isinstance(exc.errno, int) else None
    why = {_errno.ENOSPC: "no space left on the device", _errno.EROFS: "read-only file system",
           _errno.EDQUOT: "disk quota exceeded", _errno.EACCES: "permission denied"}.get(
        code, os.strerror(code) if code else " ".join(str(exc).split()))
    return UserError(f"cannot write {what}: {why}; nothing was written ({hint})", path=dest)


def open_h5_read(path, rebuild: str):
    """Open a store's HDF5 file read-only; a zero-byte, truncated or garbled file is one
    line naming it and the command that rebuilds it.  h5py says "file signature not
    found" for a zero-byte or garbled file and "truncated file" for a cut one; the
    first line of that is enough."""
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"not a readable HDF5 file ({str(exc).splitlines()[0]}); rebuild it with `{rebuild}`",
                        path=path) from None
