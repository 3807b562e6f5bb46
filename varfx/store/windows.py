"""``DATASET/windows.h5`` (written by ``varfx precompute-ld``): plan, write, open,
validate and read the per-window LD factors.

Layout (format ``varfx-windows``, version 2)::

    attrs    format, format_version, varfx_version, params (JSON), N, n_ref, n_windows,
             dataset_n_variants, dataset_sha256   (the dataset.h5 it was computed from)
             dataset_bytes, dataset_mtime_ns      (that file's size and mtime; optional)
    index/   chrom, start, end, n, n_plus, k       (one row per window)
    windows/NNNNNN/  attrs index chrom start end logdet_lambda k beta_outside sha256;
             core_idx plus_idx core_pos P G z eigvals ld_score ld_score_raw beta

``sha256`` (:func:`window_checksum`, absent in stores written before it) covers every
array of the window group, so that ``varfx store check`` can tell a window whose bytes
changed after precompute-ld wrote them (docs/formats.md).

Every open compares ``dataset_n_variants``/``dataset_sha256`` with the ``dataset.h5``
beside it (:func:`varfx.store.dataset.dataset_fingerprint`): the windows index that
dataset's variants, and factors of another dataset (a re-ingest with other inputs)
would silently give wrong likelihoods.  The comparison costs no rehash of the variants
when ``dataset.h5`` holds the fingerprint ingest recorded (equal to this store's) and
still has the size and modification time recorded here; otherwise (a dataset from
before the attribute, a copy, an edit after ingest, a re-ingest) the arrays are hashed
again, so an edited dataset is caught even though its recorded attribute is stale.
Only an edit that restores both the size and the nanosecond mtime would slip through.
Every window read checks that its factors are finite.  Version 1 stores carry no such
link and cannot be checked, so they are refused with the command that rebuilds them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import UserError
from . import DATASET_FILE, WINDOWS_FILE, WINDOWS_FORMAT, WINDOWS_PARTS, WINDOWS_VERSION, atomic_path, check_format
from .dataset import dataset_fingerprint, file_stamp, open_dataset, stored_fingerprint

#: What to do when the window store cannot be written (its place is fixed: the dataset).
SPACE_HINT = "free space in the dataset's filesystem and run precompute-ld again"
#: The window arrays that must be finite (the integer index arrays cannot be otherwise).
FLOAT_KEYS = ("P", "G", "z", "eigvals", "ld_score", "ld_score_raw", "beta")
#: The attribute of a window group holding :func:`window_checksum` of its arrays.
CHECKSUM_ATTR = "sha256"


def window_checksum(arrays) -> str:
    """SHA-256 (hex) of a window's arrays: ``arrays`` maps name -> ndarray (or is an
    open window group).  Names in sorted order, each as ``name:dtype:shape:`` and its
    bytes in little-endian order, so that the same values give the same checksum on
    any machine and a changed name, type, shape or byte changes it."""
    import hashlib

    h = hashlib.sha256()
    for key in sorted(arrays):
        arr = np.asarray(arrays[key][()])
        arr = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False)
        h.update(f"{key}:{arr.dtype.str}:{arr.shape}:".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def verify_window(g) -> str | None:
    """Recompute the checksum of an open window group and compare it with the stored
    one: None when they match, ``"absent"`` for a group without a checksum (written
    before checksums), else a description of the problem."""
    stored = g.attrs.get(CHECKSUM_ATTR)
    try:
        arrays = {key: g[key][()] for key in g}
    except (OSError, KeyError, ValueError, TypeError) as exc:
        # a garbled compressed chunk fails to decompress rather than give other values
        return f"unreadable ({type(exc).__name__}: {_first_line(exc)})"
    if stored is not None:
        stored = stored.decode() if isinstance(stored, bytes) else str(stored)
        if window_checksum(arrays) != stored:
            return "checksum mismatch: its arrays changed after precompute-ld wrote them"
    # without a checksum (an old store) the finiteness of the factors is what is left to check
    bad = [k for k in FLOAT_KEYS if k in arrays and not np.isfinite(arrays[k]).all()]
    if bad:
        return f"non-finite values in {bad[0]}"
    return "absent" if stored is None else None


def rebuild_command(dataset) -> str:
    return f"varfx precompute-ld {dataset}"


@dataclass
class WindowSpec:
    index: int
    chrom: int
    start: int  # core window [start, end) in bp
    end: int
    core_idx: np.ndarray
    plus_idx: np.ndarray


def plan_windows(chrom: np.ndarray, bp: np.ndarray, window_bp: int, flank_bp: int) -> list[WindowSpec]:
    """Cut each chromosome into core windows of ``window_bp`` starting at 0.

    ``chrom``/``bp`` must be sorted by chromosome then position (the dataset order).
    Empty core windows (gaps, centromeres) are skipped.  ``(i)+`` is every variant of
    the same chromosome within ``flank_bp`` of a core variant.
    """
    specs: list[WindowSpec] = []
    for c in np.unique(chrom):
        sel = np.flatnonzero(chrom == c)
        pos = bp[sel]
        bins = pos // window_bp
        for b in np.unique(bins):
            core = sel[bins == b]
            lo = bp[core[0]] - flank_bp
            hi = bp[core[-1]] + flank_bp
            i0 = np.searchsorted(pos, lo, side="left")
            i1 = np.searchsorted(pos, hi, side="right")
            specs.append(WindowSpec(len(specs), int(c), int(b * window_bp), int((b + 1) * window_bp), core, sel[i0:i1]))
    return specs


# ---------------------------------------------------------------------------------------
# write


def write_windows(dataset, specs, params: dict, N: float, n_ref: int, fingerprint: dict) -> None:
    """Merge the part files under ``DATASET/windows.parts/`` into one chunked, compressed
    ``windows.h5`` (atomically), refusing non-finite factors.

    ``fingerprint``: ``n_variants`` and ``sha256`` of the dataset the parts were computed
    from, and optionally the ``bytes``/``mtime_ns`` of its dataset.h5 at that time
    (:func:`varfx.store.dataset.file_stamp`), which let later opens skip the rehash.
    Written through :func:`varfx.store.h5.guarded_h5`: a full disk is one UserError and
    the HDF5 library of this process stays usable."""
    import h5py

    from .h5 import guard, guarded_h5

    dataset = Path(dataset)
    parts = dataset / WINDOWS_PARTS
    n_plus = np.zeros(len(specs), np.int64)
    ks = np.zeros(len(specs), np.int64)
    link = {"dataset_n_variants": int(fingerprint["n_variants"]), "dataset_sha256": str(fingerprint["sha256"])}
    if "bytes" in fingerprint and "mtime_ns" in fingerprint:
        link.update(dataset_bytes=int(fingerprint["bytes"]), dataset_mtime_ns=int(fingerprint["mtime_ns"]))
    with atomic_path(dataset / WINDOWS_FILE) as tmp:
        with guarded_h5(tmp, dataset / WINDOWS_FILE, "the window store", SPACE_HINT) as out:
            out.attrs.update(format=WINDOWS_FORMAT, format_version=WINDOWS_VERSION,
                             varfx_version=__version__, params=json.dumps(params), N=N, n_ref=n_ref,
                             n_windows=len(specs), **link)
            grp = out.create_group("windows")
            for s in specs:
                part_path = parts / f"w{s.index:06d}.h5"
                with h5py.File(part_path, "r") as part:
                    src = part["window"]
                    dst = grp.create_group(f"{s.index:06d}")
                    dst.attrs.update(dict(src.attrs))
                    if not np.isfinite(float(src.attrs["logdet_lambda"])):
                        raise UserError(f"window {s.index} (chr{s.chrom}:{s.start}-{s.end}): non-finite "
                                        "log|Lambda| from the LD factorisation", path=dataset / WINDOWS_FILE)
                    written = {}
                    for key in src:
                        arr = src[key][:]
                        written[key] = arr
                        if key in FLOAT_KEYS and not np.isfinite(arr).all():
                            raise UserError(f"window {s.index} (chr{s.chrom}:{s.start}-{s.end}): non-finite values "
                                            f"in {key} from the LD factorisation (check the LD reference of this "
                                            "region)", path=dataset / WINDOWS_FILE)
                        big = arr.size > 4096
                        dst.create_dataset(key, data=arr, compression="gzip" if big else None,
                                           compression_opts=4 if big else None,
                                           chunks=True if big else None, shuffle=big)
                    # of the arrays as written: `varfx store check` recomputes it from the file
                    dst.attrs[CHECKSUM_ATTR] = window_checksum(written)
                    n_plus[s.index] = len(s.plus_idx)
                    ks[s.index] = int(src.attrs["k"])
                guard(out)  # after a failed write, stop here rather than keep the rest in memory
            idx = out.create_group("index")
            idx.create_dataset("chrom", data=np.array([s.chrom for s in specs], np.int16))
            idx.create_dataset("start", data=np.array([s.start for s in specs], np.int64))
            idx.create_dataset("end", data=np.array([s.end for s in specs], np.int64))
            idx.create_dataset("n", data=np.array([len(s.core_idx) for s in specs], np.int64))
            idx.create_dataset("n_plus", data=n_plus)
            idx.create_dataset("k", data=ks)


def summarise_windows(h5, output) -> dict:
    """The summary precompute-ld prints, from an open windows.h5."""
    idx = h5["index"]
    n_plus = idx["n_plus"][:]
    ks = idx["k"][:]
    grp = h5["windows"]
    outside = np.array([float(grp[name].attrs["beta_outside"]) for name in grp])
    # windows whose k the LD correction cut below the eigen-threshold's (stores from
    # before the correction have no k_threshold: none)
    truncated = sum(int(grp[name].attrs["k"]) < int(grp[name].attrs.get("k_threshold", grp[name].attrs["k"]))
                    for name in grp)
    params = json.loads(h5.attrs["params"])
    return {
        "windows": int(len(n_plus)),
        "variants": int(idx["n"][:].sum()),
        "max_n_plus": int(n_plus.max()),
        "mean_n_plus": float(n_plus.mean()),
        "mean_k": float(ks.mean()),
        # ||(I - V V^T) beta|| / ||beta|| per window: the part of the summary statistics
        # the kept LD eigenvectors do not explain (large values flag an LD mismatch).
        "median_beta_outside": float(np.median(outside)),
        "windows_truncated": int(truncated),
        **{k: v for k, v in params.items() if k in ("window_kb", "flank_kb", "eig_threshold")},
        "output": str(output),
    }


# ---------------------------------------------------------------------------------------
# open / validate / read


def windows_file(dataset) -> Path:
    path = Path(dataset) / WINDOWS_FILE
    if not path.is_file():
        if not Path(dataset).is_dir():
            raise UserError("not a dataset directory (expected the output of `varfx ingest`)", path=dataset)
        raise UserError(f"no {WINDOWS_FILE} (run `{rebuild_command(dataset)}` first)", path=dataset)
    return path


def _damaged(path, dataset, what) -> UserError:
    return UserError(f"damaged {WINDOWS_FILE} ({what}); rebuild it with `{rebuild_command(dataset)}`", path=path)


def open_windows(dataset, check_dataset: bool = True):
    """Open ``DATASET/windows.h5`` read-only; returns ``(h5, attrs)``.

    Checks the format and version, the attributes and index every reader uses, and
    (unless ``check_dataset`` is False: a loader worker whose parent already checked)
    that the store was computed from the ``dataset.h5`` beside it."""
    from .h5 import open_h5_read

    path = windows_file(dataset)
    rebuild = rebuild_command(dataset)
    h5 = open_h5_read(path, rebuild)
    try:
        try:
            version = int(h5.attrs.get("format_version", -1))
        except (TypeError, ValueError):
            version = -1  # check_format names the problem
        if h5.attrs.get("format") == WINDOWS_FORMAT and version == 1:
            raise UserError(f"a window store of format version 1, which records no link to its dataset.h5 and "
                            f"cannot be checked against it; rebuild it with `{rebuild}`", path=path)
        check_format(h5, WINDOWS_FORMAT, WINDOWS_VERSION, path, rebuild=rebuild)
        try:
            attrs = {"N": float(h5.attrs["N"]), "n_ref": int(h5.attrs["n_ref"]),
                     "params": json.loads(h5.attrs["params"]),
                     "dataset_n_variants": int(h5.attrs["dataset_n_variants"]),
                     "dataset_sha256": str(h5.attrs["dataset_sha256"])}
            n_windows = int(h5.attrs["n_windows"])
            index = {k: h5["index"][k][:] for k in ("chrom", "start", "end", "n", "n_plus", "k")}
            if "windows" not in h5 or len(h5["windows"]) != n_windows or any(len(v) != n_windows for v in index.values()):
                raise _damaged(path, dataset, f"expected {n_windows} windows in windows/ and index/")
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise _damaged(path, dataset, f"{type(exc).__name__}: {_first_line(exc)}") from None
        if not (np.isfinite(attrs["N"]) and attrs["N"] > 0):
            raise _damaged(path, dataset, f"sample size N = {attrs['N']}")
        attrs["index"] = index
        if check_dataset:
            _check_link(h5, attrs, dataset, path)
    except BaseException:
        h5.close()
        raise
    return h5, attrs


def _first_line(exc) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else "unreadable"


def _check_link(h5, attrs, dataset, path) -> None:
    """The store was computed from the dataset.h5 beside it: same variant count, same
    content hash (rehashed only when :func:`_link_unchanged` cannot vouch for it)."""
    stored = attrs["dataset_n_variants"]
    with open_dataset(dataset) as d:
        M = int(d["variants"]["bp"].shape[0])
        if stored != M:
            raise UserError(f"computed for another dataset.h5 (for {stored} variants; this dataset.h5 has {M}); "
                            f"rebuild it with `{rebuild_command(dataset)}`", path=path)
        if _link_unchanged(h5, d, attrs, Path(dataset) / DATASET_FILE):
            return
        sha = dataset_fingerprint(d)["sha256"]
    if sha != attrs["dataset_sha256"]:
        raise UserError(f"computed for another dataset.h5 (its {M} variants differ in position, alleles, z or n: "
                        f"the content hash does not match); rebuild it with `{rebuild_command(dataset)}`", path=path)


def _link_unchanged(h5, d, attrs, dataset_path) -> bool:
    """Whether the link can be confirmed without hashing: dataset.h5 records (from
    ingest) the fingerprint this store records, and has not been written to since the
    windows were computed (same size and mtime).  The attribute alone is not enough:
    an edit of the arrays keeps it, but changes the file's mtime."""
    recorded = stored_fingerprint(d)
    if recorded != {"n_variants": attrs["dataset_n_variants"], "sha256": attrs["dataset_sha256"]}:
        return False
    try:
        stamp = {"bytes": int(h5.attrs["dataset_bytes"]), "mtime_ns": int(h5.attrs["dataset_mtime_ns"])}
    except (KeyError, TypeError, ValueError):
        return False  # a store written before the stamp was recorded
    try:
        return stamp == file_stamp(dataset_path)
    except OSError:
        return False


def read_window(g, attrs, tdtype, device="cpu", meta_only=False, path=None, dataset=None):
    """One stored window as a :class:`varfx.api.Window` (tensors unless ``meta_only``).

    A garbled group or a non-finite factor is a UserError naming the file and the HDF5
    dataset (``windows/000003/G``)."""
    import torch

    from ..api import Window

    try:
        a = g.attrs
        arrays = {k: g[k][:] for k in ("eigvals", "plus_idx", "core_idx", "core_pos", "ld_score")}
        if not meta_only:
            arrays.update({k: g[k][:] for k in ("P", "beta", "G", "z")})
        scalars = {k: a[k] for k in ("index", "chrom", "start", "end", "k", "logdet_lambda")}
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise _damaged(path, dataset, f"{g.name}: {type(exc).__name__}: {_first_line(exc)}") from None
    for key, arr in arrays.items():
        if key in FLOAT_KEYS and not np.isfinite(arr).all():
            raise UserError(f"non-finite values in {g.name.lstrip('/')}/{key}; rebuild it with "
                            f"`{rebuild_command(dataset)}`", path=path)
    if not np.isfinite(float(scalars["logdet_lambda"])):
        raise UserError(f"non-finite logdet_lambda in {g.name.lstrip('/')}; rebuild it with "
                        f"`{rebuild_command(dataset)}`", path=path)
    n_var = attrs.get("dataset_n_variants")
    if n_var is not None and len(arrays["plus_idx"]) and (arrays["plus_idx"].min() < 0
                                                          or arrays["plus_idx"].max() >= n_var):
        raise _damaged(path, dataset, f"{g.name}/plus_idx outside the dataset's {n_var} variants")
    n_scale = None
    if "n_scale" in g:
        # n_m / N of the core variants (mixed sample sizes): G already carries it; the
        # LD score regression needs it for its bias correction and diagonal
        n_scale = g["n_scale"][:]
        if not (np.isfinite(n_scale).all() and (n_scale > 0).all()):
            raise _damaged(path, dataset, f"{g.name}/n_scale is not positive and finite")

    def t(key):
        return None if meta_only else torch.as_tensor(arrays[key], dtype=tdtype, device=device)

    return Window(
        index=int(scalars["index"]), chrom=int(scalars["chrom"]), start=int(scalars["start"]),
        end=int(scalars["end"]), G=t("G"), z=t("z"),
        eigvals=arrays["eigvals"], logdet_lambda=float(scalars["logdet_lambda"]),
        plus_idx=arrays["plus_idx"], core_idx=arrays["core_idx"], core_pos=arrays["core_pos"],
        ld_score=arrays["ld_score"], N=attrs["N"], n_ref=attrs["n_ref"], P=t("P"), beta=t("beta"),
        # the stored k matters only without z (with z, the window takes k from it)
        n_scale=n_scale, k=int(scalars["k"]) if meta_only else None,
    )


def load_windows(dataset, chroms=None, dtype="float64", device="cpu", meta_only=False, check_dataset=True):
    """Read the window store; returns (list[Window], attrs dict).

    ``chroms``: None for all, else an iterable of chromosome numbers to keep.
    ``meta_only``: positions, indices and LD scores only (no G, z, P): what a trainer
    needs to plan batches when a :class:`WindowBatches` loader reads the factors.
    ``attrs["all_chroms"]``: the chromosomes the store has windows on.
    ``check_dataset=False`` skips the dataset link check (:func:`open_windows`) for a
    caller that has just made it.
    """
    import torch

    tdtype = getattr(torch, dtype)
    h5, attrs = open_windows(dataset, check_dataset=check_dataset)
    path = Path(dataset) / WINDOWS_FILE
    with h5:
        wchrom = attrs["index"]["chrom"]
        keep = np.arange(len(wchrom)) if chroms is None else np.flatnonzero(np.isin(wchrom, list(chroms)))
        attrs["all_chroms"] = sorted(int(c) for c in np.unique(wchrom))
        windows = [_window(h5, attrs, i, tdtype, device, meta_only, path, dataset) for i in keep]
    return windows, attrs


def _window(h5, attrs, i, tdtype, device, meta_only, path, dataset):
    name = f"{int(i):06d}"
    if name not in h5["windows"]:
        raise _damaged(path, dataset, f"no windows/{name}")
    return read_window(h5["windows"][name], attrs, tdtype, device, meta_only, path=path, dataset=dataset)


def stored_params(dataset):
    """``(format_version, params dict)`` of an existing windows.h5, or None when there
    is none or it cannot be read (a re-run of precompute-ld then rebuilds it)."""
    import h5py

    path = Path(dataset) / WINDOWS_FILE
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as h5:
            return int(h5.attrs.get("format_version", -1)), json.loads(h5.attrs["params"])
    except (OSError, KeyError, ValueError, TypeError):
        return None


def _identity(x):
    return x


class WindowBatches:
    """A map-style dataset of training batches: item ``i`` is the list of windows
    (factors read from ``windows.h5``) of batch ``i``.  Each loader worker process
    opens its own read-only HDF5 handle, so a ``torch.utils.data.DataLoader`` with
    workers reads the next batches while the trainer computes.

    The store's link to its dataset is checked by whoever built the batches (with
    :func:`load_windows`); the loader's own opens check format and finiteness only."""

    def __init__(self, dataset, batches, dtype="float64", tracks=False):
        self.dataset = str(dataset)
        self.batches = [list(map(int, b)) for b in batches]
        self.dtype = dtype
        self.tracks = tracks
        self._h5 = None
        self._attrs = None
        self._data = None

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        import torch

        if self._h5 is None:
            self._h5, self._attrs = open_windows(self.dataset, check_dataset=False)
        tdtype = getattr(torch, self.dtype)
        path = Path(self.dataset) / WINDOWS_FILE
        windows = [_window(self._h5, self._attrs, j, tdtype, "cpu", False, path, self.dataset)
                   for j in self.batches[i]]
        if not self.tracks or not windows:
            return windows, None
        # the per-base tracks of the batch's variants: one contiguous slice (the
        # dataset is sorted, and a batch's windows are read together)
        from .variants import track_rows

        if self._data is None:
            self._data = open_dataset(self.dataset, validate=False)
        lo = min(int(w.plus_idx.min()) for w in windows)
        hi = max(int(w.plus_idx.max()) for w in windows) + 1
        return windows, (lo, track_rows(self._data, lo, hi))

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_h5"] = state["_data"] = None  # HDF5 handles do not cross processes
        return state

    def loader(self, workers: int):
        from torch.utils.data import DataLoader

        return DataLoader(self, batch_size=None, shuffle=False, num_workers=workers,
                          prefetch_factor=2 if workers else None, collate_fn=_identity)
