"""``DATASET/dataset.h5`` (written by ``varfx ingest``): open, validate, fingerprint.

Opening checks what every later stage relies on, so that a damaged or foreign file is
a one-line error naming it and the command that rebuilds it, never a traceback deep in
a stage: that it is HDF5 at all (a zero-byte, truncated or garbled file is not), its
format and version, the ``variants`` arrays and their lengths, and that ``z`` and ``n``
are finite (``n`` positive) and ``freq`` a frequency or missing (NaN: a UKBB/PolyFun
LD reference carries none).

The content hash (:func:`dataset_fingerprint`) that links a window store to its
dataset is computed once, by ingest, and kept in the attributes ``content_n_variants``
and ``content_sha256`` (:func:`record_fingerprint`); hashing the variants again costs
about 1.4 s per million variants, on every open of ``windows.h5``.  Opening and
validating a dataset does *not* check that attribute against the arrays (that would be
the very rehash it saves): an edit of the arrays after ingest (``h5py`` in ``r+`` mode)
keeps a stale attribute.  It is caught where it matters, by the window store's link
check (:func:`varfx.store.windows.open_windows`), which trusts the attribute only while
``dataset.h5`` has the size and modification time (:func:`file_stamp`) recorded when
the windows were computed, and rehashes the arrays otherwise.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..errors import UserError
from . import DATASET_FILE, DATASET_FORMAT, DATASET_VERSION, check_format

REBUILD = "varfx ingest"
VARIANT_KEYS = ("snp", "chrom", "bp", "a1", "a2", "z", "n", "freq")
#: The arrays the content hash covers: what the window factors are computed from.
HASHED_KEYS = ("chrom", "bp", "a1", "a2", "z", "n")
#: Attributes of dataset.h5 holding its fingerprint (written by ingest).
FINGERPRINT_ATTRS = {"n_variants": "content_n_variants", "sha256": "content_sha256"}


def dataset_file(dataset) -> Path:
    """``DATASET/dataset.h5``, or a UserError when the directory or the file is missing."""
    path = Path(dataset) / DATASET_FILE
    if not Path(dataset).is_dir():
        raise UserError("not a dataset directory (expected the output of `varfx ingest`)", path=dataset)
    if not path.is_file():
        raise UserError(f"no {DATASET_FILE} in the dataset directory (run `varfx ingest` first)", path=dataset)
    return path


def _damaged(path, what) -> UserError:
    return UserError(f"damaged {DATASET_FILE} ({what}); rebuild it with `{REBUILD}`", path=path)


def open_dataset(dataset, validate: bool = True):
    """Open ``DATASET/dataset.h5`` read-only after checking its format (and, unless
    ``validate`` is False, its variant arrays: :func:`validate_dataset`)."""
    from .h5 import open_h5_read

    path = dataset_file(dataset)
    h5 = open_h5_read(path, REBUILD)
    try:
        check_format(h5, DATASET_FORMAT, DATASET_VERSION, path, rebuild=REBUILD)
        if validate:
            validate_dataset(h5, path)
    except BaseException:
        h5.close()
        raise
    return h5


def validate_dataset(h5, path) -> None:
    """Structure and values of an open dataset.h5 (UserError naming the dataset)."""
    try:
        if "variants" not in h5:
            raise _damaged(path, "no 'variants' group")
        var = h5["variants"]
        missing = [k for k in VARIANT_KEYS if k not in var]
        if missing:
            raise _damaged(path, f"no variants/{missing[0]}")
        lengths = {k: var[k].shape[0] if var[k].ndim == 1 else -1 for k in VARIANT_KEYS}
        M = lengths["bp"]
        bad = [k for k, n in lengths.items() if n != M]
        if bad:
            raise _damaged(path, f"variants/{bad[0]} has {lengths[bad[0]]} rows, variants/bp {M}")
        try:
            N = float(h5.attrs["N"])
        except (KeyError, TypeError, ValueError):
            raise _damaged(path, "no sample size attribute N") from None
        if not (np.isfinite(N) and N > 0):
            raise UserError(f"attribute N is {N}: expected a positive sample size; rebuild it with `{REBUILD}`",
                            path=path)
        _check_values(path, "variants/z", var["z"][:], finite=True)
        _check_values(path, "variants/n", var["n"][:], finite=True, positive=True)
        freq = var["freq"][:].astype(np.float64)
        wrong = ~np.isnan(freq) & ~((freq >= 0) & (freq <= 1))
        if wrong.any():
            i = int(np.flatnonzero(wrong)[0])
            raise UserError(f"dataset variants/freq: {freq[i]} at variant {i} ({np.count_nonzero(wrong)} such): "
                            f"expected a frequency in [0, 1] or missing; rebuild it with `{REBUILD}`", path=path)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        # an HDF5 file whose header opens but whose data blocks are cut or garbled
        raise _damaged(path, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unreadable'}") from None


def _check_values(path, name, arr, finite=True, positive=False) -> None:
    arr = np.asarray(arr, dtype=np.float64)
    bad = ~np.isfinite(arr) if finite else np.zeros(arr.shape, bool)
    if positive:
        bad |= ~(arr > 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        want = "a positive finite number" if positive else "a finite number"
        raise UserError(f"dataset {name}: {arr[i]} at variant {i} ({np.count_nonzero(bad)} such): expected {want}; "
                        f"rebuild it with `{REBUILD}`", path=path)


def dataset_fingerprint(h5) -> dict:
    """``{"n_variants", "sha256"}`` of an open dataset: SHA-256 over the arrays the LD
    windows are computed from (chromosome, position, alleles, z, n), each as its stored
    bytes preceded by its name and length, so that any change to a variant's position,
    alleles or statistics (a re-ingest with other inputs or filters) changes it.  One
    pass over a few arrays: milliseconds for 100k variants."""
    var = h5["variants"]
    h = hashlib.sha256()
    M = int(var["bp"].shape[0])
    for key in HASHED_KEYS:
        arr = var[key][:]
        h.update(f"{key}:{len(arr)}:".encode())
        if arr.dtype == object:  # variable-length strings (alleles) come back as bytes
            h.update(b"\0".join(a if isinstance(a, bytes) else str(a).encode() for a in arr))
        else:
            h.update(np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
    return {"n_variants": M, "sha256": h.hexdigest()}


def record_fingerprint(h5) -> dict:
    """Compute the fingerprint of a dataset.h5 being written (open for writing, its
    variants written) and store it as its attributes; returns it."""
    fp = dataset_fingerprint(h5)
    for key, attr in FINGERPRINT_ATTRS.items():
        h5.attrs[attr] = fp[key]
    return fp


def stored_fingerprint(h5) -> dict | None:
    """The fingerprint ingest recorded in an open dataset.h5, or None for a dataset
    without it (written before it was recorded) or with an unreadable one."""
    try:
        return {"n_variants": int(h5.attrs[FINGERPRINT_ATTRS["n_variants"]]),
                "sha256": _text(h5.attrs[FINGERPRINT_ATTRS["sha256"]])}
    except (KeyError, TypeError, ValueError, OSError):
        return None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def file_stamp(path) -> dict:
    """``{"bytes", "mtime_ns"}`` of a file: what changes when it is written to (an edit
    in ``r+`` mode, a copy, a re-ingest), so that a hash recorded in it is trusted only
    while the stamp is the one seen when the hash was compared."""
    st = Path(path).stat()
    return {"bytes": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}
