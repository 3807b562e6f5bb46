"""What the ``--dry-run`` of ingest, bags and score-vcf share: an output written into
memory instead of to disk (to time and size a sample of it), the process's peak memory,
the check that a destination could be written, and the plan dict they all print.

The plan's keys (docs/scale.md, "Dry runs of ingest, bags and score-vcf"):
``dry_run``, ``stage``, ``reads`` (``role``, ``path``, ``bytes``), ``writes`` (``path``,
``bytes``: an estimate, or None when it cannot be made; ``unpriced``: true for a file
left out of ``disk_bytes``), ``counts`` (the stage's own),
``counts_exact``, ``sample``, ``seconds`` (with ``seconds_measured`` and
``seconds_estimated``, the parts), ``memory_bytes``, ``disk_bytes``, ``disk_peak_bytes``
and ``basis`` (one line per estimate saying what it rests on).
"""

from __future__ import annotations

import io
import math
import os
import sys
from pathlib import Path

from ..errors import UserError


def write_in_memory(fill):
    """``fill(f5)`` run on an HDF5 file in memory: ``(what fill returned, the bytes the file
    would take on disk, the seconds it took)``.  The size is read after closing, because
    HDF5 allocates the last of the file as it closes."""
    import time

    import h5py

    t0 = time.perf_counter()
    buf = io.BytesIO()
    f5 = h5py.File(buf, "w")
    try:
        result = fill(f5)
    finally:
        f5.close()
    return result, buf.getbuffer().nbytes, time.perf_counter() - t0


def peak_rss_bytes() -> int | None:
    """The peak resident memory of this process so far (None where the platform does not
    say): what a run that did the same reading held at its largest."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, kB on Linux


def check_writable(path, what: str) -> None:
    """The one-line error the real run would give when it came to write ``path``: the
    nearest existing directory above it (the real run makes the missing ones) is not
    a writable directory."""
    path = Path(path)
    d = path.parent
    while not d.exists() and d != d.parent:
        d = d.parent
    if not d.is_dir():
        raise UserError(f"cannot write {what}: {d} is not a directory", path=path)
    try:
        read_only = bool(os.statvfs(d).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows): access() below decides
        read_only = False
    if read_only:
        # what the run's first write there raises (EROFS); root passes access() anyway
        raise UserError(f"cannot write {what}: {d}: read-only file system (choose a writable destination)",
                        path=path)
    if not os.access(d, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {what}: {d}: permission denied (choose a writable destination)", path=path)


def file_bytes(path) -> int | None:
    try:
        return int(os.path.getsize(path))
    except OSError:
        return None


def plan(stage: str, *, reads, writes, counts: dict, counts_exact: bool, seconds_measured: float,
         seconds_estimated: float | None, memory_bytes, basis: list[str], sample=None,
         disk_peak_bytes=None, **extra) -> dict:
    """The dry-run plan of ``stage`` as one JSON-ready dict (keys in the module doc).
    ``seconds_estimated`` None: the part of the run the dry run did not do cannot be
    priced, and so the total is unknown (None) rather than invented."""
    # a write marked "unpriced" (score-vcf's index) is left out of the sum, and says so in
    # its basis line; any other write of unknown size makes the disk unknown
    sizes = [w["bytes"] for w in writes if not w.get("unpriced")]
    disk = None if any(b is None for b in sizes) else float(sum(sizes))
    out = {"dry_run": True, "stage": stage, "reads": list(reads), "writes": list(writes), "counts": counts,
           "counts_exact": bool(counts_exact), "sample": sample,
           "seconds_measured": float(seconds_measured),
           "seconds_estimated": None if seconds_estimated is None else float(seconds_estimated),
           "seconds": None if seconds_estimated is None else float(seconds_measured + seconds_estimated),
           "memory_bytes": None if memory_bytes is None else float(memory_bytes),
           "disk_bytes": disk,
           "disk_peak_bytes": disk if disk_peak_bytes is None or disk is None else float(disk_peak_bytes),
           "basis": list(basis), **extra}
    _check_finite(out, "dry run")
    return out


def _check_finite(obj, key) -> None:
    """A non-finite estimate is refused (a sample timed at 0 s must not print an
    infinite rate as if it were one)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_finite(v, f"{key}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_finite(v, f"{key}[{i}]")
    elif isinstance(obj, float) and not math.isfinite(obj):
        raise UserError(f"the {key} is not finite ({obj}): the dry run cannot price this input")
