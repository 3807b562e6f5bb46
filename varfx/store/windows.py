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
changed after precompute-ld wrote them (docs/formats.md); every full read of a window
(training, evaluate, score) verifies it too.

A sharded store (``precompute-ld --shards chrom``, format version 3) keeps the same
window groups in one file per chromosome, ``windows.shards/chrC.h5`` (format
``varfx-windows-shard``: attrs chrom, params, N, n_ref, the dataset link; ``windows/``),
and ``windows.h5`` is their index: the attrs above plus ``layout = "chrom"``, ``index/``
plus ``k_threshold``, ``beta_outside`` and ``shard`` (the row of ``shards/`` holding the
window), and ``shards/`` (chrom, file, bytes, sha256, n_windows).  Shard files are named
by the index relative to its own directory and opened by :class:`WindowStore` only when
a window of theirs is read (never through HDF5 external links, which HDF5 resolves
against the current directory first).

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
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import UserError
from . import (DATASET_FILE, SHARD_FORMAT, SHARD_VERSION, WINDOWS_FILE, WINDOWS_FORMAT, WINDOWS_PARTS,
               WINDOWS_SHARDED_VERSION, WINDOWS_SHARDS, WINDOWS_VERSION, atomic_path, check_format)
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


def rebuild_command(dataset, params=None, layout=None) -> str:
    """The precompute-ld command that rebuilds (or repairs) the store of ``dataset``:
    with ``params`` (the store's own) its options, so that a re-run has the same params
    and recomputes only what is damaged or missing rather than another store."""
    cmd = f"varfx precompute-ld {dataset}"
    if not params:
        return cmd
    try:
        cmd += f" --window-kb {float(params['window_kb']):g} --flank-kb {float(params['flank_kb']):g}"
        if float(params.get("eig_threshold", 1e-3)) != 1e-3:
            cmd += f" --eig-threshold {float(params['eig_threshold']):g}"
        corr = params.get("ld_correction") or {}
        if corr.get("requested", "auto") != "auto":
            cmd += f" --ld-correction {corr['requested']}"
        for key, opt in (("max_rank_frac", "--max-rank-frac"), ("var_share", "--var-share"),
                         ("flank_noise_z", "--flank-noise-z")):
            if key in corr:
                cmd += f" {opt} {float(corr[key]):g}"
    except (KeyError, TypeError, ValueError):
        return f"varfx precompute-ld {dataset}"
    if layout == "chrom":
        cmd += " --shards chrom"
    return cmd


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

#: What ``precompute-ld --shards`` accepts (docs/usage.md): ``auto`` is ``chrom`` for a
#: store of more than one chromosome and at least AUTO_SHARD_MIN_WINDOWS windows.
SHARD_LAYOUTS = ("auto", "none", "chrom")
#: A genome at the default 1-Mb windows has about 2,700; one chromosome, or the test and
#: example data sets, far fewer: those stay one file, which every varfx since 0.1 reads.
AUTO_SHARD_MIN_WINDOWS = 500


def resolve_layout(shards: str, specs) -> str:
    """``none`` or ``chrom``: what ``--shards`` means for these windows."""
    if shards not in SHARD_LAYOUTS:
        raise UserError(f"option --shards: expected one of {', '.join(SHARD_LAYOUTS)}, got {shards!r}")
    if shards != "auto":
        return shards
    many = len({s.chrom for s in specs}) > 1 and len(specs) >= AUTO_SHARD_MIN_WINDOWS
    return "chrom" if many else "none"


def shard_name(chrom) -> str:
    """The shard file of a chromosome, relative to the dataset directory."""
    return f"{WINDOWS_SHARDS}/chr{int(chrom)}.h5"


@dataclass
class ShardInfo:
    """One shard file as the index records it (``file`` relative to the dataset
    directory) and the per-window values the index keeps of its windows."""
    chrom: int
    file: str
    bytes: int
    sha256: str
    windows: list
    k: list
    k_threshold: list
    beta_outside: list


def _link_attrs(fingerprint) -> dict:
    link = {"dataset_n_variants": int(fingerprint["n_variants"]), "dataset_sha256": str(fingerprint["sha256"])}
    if "bytes" in fingerprint and "mtime_ns" in fingerprint:
        link.update(dataset_bytes=int(fingerprint["bytes"]), dataset_mtime_ns=int(fingerprint["mtime_ns"]))
    return link


class _Sources:
    """Where the arrays of each window come from when a store file is written: its part
    file under ``windows.parts/`` or, for a window reused as it is, its group in an
    existing store file (``reuse``: index -> (file, group name)).  Files are opened
    once each and closed by :meth:`close`."""

    def __init__(self, parts: Path, reuse=None):
        self.parts = Path(parts)
        self.reuse = dict(reuse or {})
        self._open: dict = {}

    def group(self, i: int):
        import h5py

        if i in self.reuse:
            path, name = self.reuse[i]
        else:
            path, name = self.parts / f"w{i:06d}.h5", "window"
        key = str(path)
        if key not in self._open:
            if len(self._open) >= 8:
                self.close()  # a part file is read once, a store file for a run of windows: few stay open
            self._open[key] = h5py.File(path, "r")
        return self._open[key][name]

    def close(self):
        for f in self._open.values():
            f.close()
        self._open.clear()


def _copy_window(grp, s, src, path, dataset) -> dict:
    """Write window ``s`` from the group ``src`` into ``grp`` (chunked, compressed,
    refusing non-finite factors, with its checksum); returns its per-window values."""
    dst = grp.create_group(f"{s.index:06d}")
    dst.attrs.update(dict(src.attrs))
    if not np.isfinite(float(src.attrs["logdet_lambda"])):
        raise UserError(f"window {s.index} (chr{s.chrom}:{s.start}-{s.end}): non-finite "
                        "log|Lambda| from the LD factorisation", path=path)
    written = {}
    for key in src:
        arr = src[key][()]
        written[key] = arr
        if key in FLOAT_KEYS and not np.isfinite(arr).all():
            raise UserError(f"window {s.index} (chr{s.chrom}:{s.start}-{s.end}): non-finite values "
                            f"in {key} from the LD factorisation (check the LD reference of this "
                            "region)", path=path)
        big = arr.size > 4096
        dst.create_dataset(key, data=arr, compression="gzip" if big else None,
                           compression_opts=4 if big else None,
                           chunks=True if big else None, shuffle=big)
    # of the arrays as written: `varfx store check` recomputes it from the file
    dst.attrs[CHECKSUM_ATTR] = window_checksum(written)
    k = int(src.attrs["k"])
    return {"k": k, "k_threshold": int(src.attrs.get("k_threshold", k)),
            "beta_outside": float(src.attrs["beta_outside"])}


def write_windows(dataset, specs, params: dict, N: float, n_ref: int, fingerprint: dict, reuse=None,
                  shards=None) -> None:
    """Write ``DATASET/windows.h5`` (atomically), refusing non-finite factors.

    Unsharded (``shards`` None): one chunked, compressed file of every window, read
    from its part file under ``DATASET/windows.parts/`` or, for the windows in
    ``reuse`` (index -> (file, group name)), from an existing store.  Sharded
    (``shards``: the :class:`ShardInfo` of every chromosome, written by
    :func:`write_shard`): the small index of those shard files (format version 3).

    ``fingerprint``: ``n_variants`` and ``sha256`` of the dataset the parts were computed
    from, and optionally the ``bytes``/``mtime_ns`` of its dataset.h5 at that time
    (:func:`varfx.store.dataset.file_stamp`), which let later opens skip the rehash.
    Written through :func:`varfx.store.h5.guarded_h5`: a full disk is one UserError and
    the HDF5 library of this process stays usable."""
    import h5py

    from .h5 import guard, guarded_h5

    dataset = Path(dataset)
    n_plus = np.array([len(s.plus_idx) for s in specs], np.int64)
    per = {key: np.zeros(len(specs), dtype) for key, dtype in
           (("k", np.int64), ("k_threshold", np.int64), ("beta_outside", np.float64))}
    version = WINDOWS_VERSION if shards is None else WINDOWS_SHARDED_VERSION
    with atomic_path(dataset / WINDOWS_FILE) as tmp:
        with guarded_h5(tmp, dataset / WINDOWS_FILE, "the window store", SPACE_HINT) as out:
            out.attrs.update(format=WINDOWS_FORMAT, format_version=version,
                             varfx_version=__version__, params=json.dumps(params), N=N, n_ref=n_ref,
                             n_windows=len(specs), **_link_attrs(fingerprint))
            shard_of = np.zeros(len(specs), np.int32)
            if shards is None:
                grp = out.create_group("windows")
                sources = _Sources(dataset / WINDOWS_PARTS, reuse)
                try:
                    for s in specs:
                        vals = _copy_window(grp, s, sources.group(s.index), dataset / WINDOWS_FILE, dataset)
                        for key, v in vals.items():
                            per[key][s.index] = v
                        guard(out)  # after a failed write, stop here rather than keep the rest in memory
                finally:
                    sources.close()
            else:
                out.attrs["layout"] = "chrom"
                for row, info in enumerate(shards):
                    for j, i in enumerate(info.windows):
                        shard_of[i] = row
                        per["k"][i], per["k_threshold"][i] = info.k[j], info.k_threshold[j]
                        per["beta_outside"][i] = info.beta_outside[j]
                tab = out.create_group("shards")
                tab.create_dataset("chrom", data=np.array([i.chrom for i in shards], np.int16))
                tab.create_dataset("file", data=np.array([i.file for i in shards], dtype=h5py.string_dtype()))
                tab.create_dataset("bytes", data=np.array([i.bytes for i in shards], np.int64))
                tab.create_dataset("sha256", data=np.array([i.sha256 for i in shards], dtype=h5py.string_dtype()))
                tab.create_dataset("n_windows", data=np.array([len(i.windows) for i in shards], np.int64))
            idx = out.create_group("index")
            idx.create_dataset("chrom", data=np.array([s.chrom for s in specs], np.int16))
            idx.create_dataset("start", data=np.array([s.start for s in specs], np.int64))
            idx.create_dataset("end", data=np.array([s.end for s in specs], np.int64))
            idx.create_dataset("n", data=np.array([len(s.core_idx) for s in specs], np.int64))
            idx.create_dataset("n_plus", data=n_plus)
            idx.create_dataset("k", data=per["k"])
            if shards is not None:
                # what the summary of a re-run needs, without opening every shard
                idx.create_dataset("k_threshold", data=per["k_threshold"])
                idx.create_dataset("beta_outside", data=per["beta_outside"])
                idx.create_dataset("shard", data=shard_of)


def write_shard(dataset, chrom: int, specs, params: dict, N: float, n_ref: int, fingerprint: dict,
                reuse=None) -> ShardInfo:
    """Write the shard ``DATASET/windows.shards/chr{chrom}.h5`` of the windows ``specs``
    (those of that chromosome) atomically, from their part files or ``reuse`` as
    :func:`write_windows` does; returns what the index records of it.  The shard
    carries the store's params and dataset link, so that a shard left by a killed run
    is reused only by a run of the same params on the same dataset."""
    from . import sha256_file
    from .h5 import guard, guarded_h5

    dataset = Path(dataset)
    name = shard_name(chrom)
    path = dataset / name
    vals = {"k": [], "k_threshold": [], "beta_outside": []}
    with atomic_path(path) as tmp:
        with guarded_h5(tmp, path, "the window store", SPACE_HINT) as out:
            out.attrs.update(format=SHARD_FORMAT, format_version=SHARD_VERSION, varfx_version=__version__,
                             chrom=int(chrom), params=json.dumps(params), N=N, n_ref=n_ref, n_windows=len(specs),
                             **_link_attrs(fingerprint))
            grp = out.create_group("windows")
            sources = _Sources(dataset / WINDOWS_PARTS, reuse)
            try:
                for s in specs:
                    for key, v in _copy_window(grp, s, sources.group(s.index), path, dataset).items():
                        vals[key].append(v)
                    guard(out)
            finally:
                sources.close()
        # of the file as it will be renamed: `store check` and the up-to-date check compare it
        info = ShardInfo(int(chrom), name, tmp.stat().st_size, sha256_file(tmp), [s.index for s in specs], **vals)
    return info


def read_shard_info(dataset, chrom: int, params: dict, windows) -> ShardInfo | None:
    """The :class:`ShardInfo` of an existing shard file written with ``params``
    holding exactly the windows ``windows`` (indices) of chromosome ``chrom``, else None
    (missing, unreadable, or of other params, another chromosome or other windows).
    Hashes the file: for a shard the index does not record yet (a killed run's)."""
    import h5py

    from . import sha256_file

    path = Path(dataset) / shard_name(chrom)
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as f:
            if (f.attrs.get("format") != SHARD_FORMAT or int(f.attrs.get("chrom", -1)) != int(chrom)
                    or json.loads(f.attrs.get("params", "null")) != params):
                return None
            grp = f["windows"]
            if sorted(grp) != [f"{int(i):06d}" for i in windows]:
                return None
            vals = {"k": [], "k_threshold": [], "beta_outside": []}
            for i in windows:
                a = grp[f"{int(i):06d}"].attrs
                k = int(a["k"])
                vals["k"].append(k)
                vals["k_threshold"].append(int(a.get("k_threshold", k)))
                vals["beta_outside"].append(float(a["beta_outside"]))
    except (OSError, KeyError, ValueError, TypeError):
        return None
    return ShardInfo(int(chrom), shard_name(chrom), path.stat().st_size, sha256_file(path),
                     [int(i) for i in windows], **vals)


def summarise_windows(h5, output) -> dict:
    """The summary precompute-ld prints, from an open windows.h5."""
    idx = h5["index"]
    n_plus = idx["n_plus"][:]
    ks = idx["k"][:]
    if "beta_outside" in idx:  # a sharded store's index keeps them: no shard is opened
        outside = idx["beta_outside"][:]
        truncated = int((ks < idx["k_threshold"][:]).sum())
    else:
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
        "shards": str(h5.attrs.get("layout", "none")),
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
    """Open ``DATASET/windows.h5`` read-only; returns ``(store, attrs)``: a
    :class:`WindowStore` (used as the open file was: ``with``, ``close()``,
    ``store["index"]``, ``store.attrs``) and a dict of what every reader uses.

    Checks the format and version, the attributes and index every reader uses (of a
    sharded store, its table of shards; the shards themselves are checked as they are
    opened), and (unless ``check_dataset`` is False: a loader worker whose parent
    already checked) that the store was computed from the ``dataset.h5`` beside it."""
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
        check_format(h5, WINDOWS_FORMAT, WINDOWS_SHARDED_VERSION, path, rebuild=rebuild, also=(WINDOWS_VERSION,))
        try:
            attrs = {"N": float(h5.attrs["N"]), "n_ref": int(h5.attrs["n_ref"]),
                     "params": json.loads(h5.attrs["params"]),
                     "dataset_n_variants": int(h5.attrs["dataset_n_variants"]),
                     "dataset_sha256": str(h5.attrs["dataset_sha256"])}
            n_windows = int(h5.attrs["n_windows"])
            index = {k: h5["index"][k][:] for k in ("chrom", "start", "end", "n", "n_plus", "k")}
            if any(len(v) != n_windows for v in index.values()):
                raise _damaged(path, dataset, f"expected {n_windows} windows in index/")
            if version == WINDOWS_VERSION:
                attrs["layout"] = "none"
                if "windows" not in h5 or len(h5["windows"]) != n_windows:
                    raise _damaged(path, dataset, f"expected {n_windows} windows in windows/ and index/")
            else:
                attrs["layout"] = "chrom"
                attrs["shards"] = shard_table(h5, path, dataset, n_windows)
                index["shard"] = h5["index"]["shard"][:]
                if len(index["shard"]) != n_windows:
                    raise _damaged(path, dataset, f"expected {n_windows} rows in index/shard")
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
    return WindowStore(h5, dataset, path, attrs), attrs


def shard_table(h5, path, dataset, n_windows) -> list[dict]:
    """The ``shards/`` table of a sharded index: one dict per shard file."""
    tab = h5["shards"]
    rows = [{"chrom": int(c), "file": str(f), "bytes": int(b), "sha256": str(h), "n_windows": int(n)}
            for c, f, b, h, n in zip(tab["chrom"][:], tab["file"].asstr()[:], tab["bytes"][:],
                                     tab["sha256"].asstr()[:], tab["n_windows"][:])]
    if sum(r["n_windows"] for r in rows) != n_windows:
        raise _damaged(path, dataset, f"its shards/ table holds {sum(r['n_windows'] for r in rows)} windows, "
                                      f"not the {n_windows} the store records")
    for r in rows:
        # a name of the index, resolved in the dataset directory: never a path elsewhere
        if r["file"] != shard_name(r["chrom"]):
            raise _damaged(path, dataset, f"shard file name {r['file']!r} (expected {shard_name(r['chrom'])!r})")
    return rows


#: An existing store of at most this many bytes (windows.h5 and its shards) is verified
#: in full before precompute-ld reuses it: each shard's file SHA-256 (the windows of a
#: shard that differs, and of an unsharded store, by their own checksums); a larger one
#: has its shards' presence, sizes and identity checked, unless ``--verify``.  Measured
#: (docs/scale.md, "Sharded window stores"): the full check of the chr22 store took
#: 7.5% of the precompute-ld that wrote it (unsharded, reading every window) and a
#: fifth of that sharded (one file hash), so 1 GiB is about a minute at worst.
VERIFY_FULL_MAX_BYTES = 1 << 30


def store_bytes(dataset) -> int:
    """Bytes of a dataset's window store on disk: windows.h5 and its shard files."""
    files = [Path(dataset) / WINDOWS_FILE, *(Path(dataset) / WINDOWS_SHARDS).glob("chr*.h5")]
    return sum(p.stat().st_size for p in files if p.is_file())


#: Shard files a reader keeps open at a time (a loader worker reads the windows of a
#: batch, mostly of one chromosome): never every shard of a genome at once.
MAX_OPEN_SHARDS = 2


class WindowStore:
    """An open window store: the index file ``windows.h5`` and, for a sharded store,
    its shard files, opened when a window of theirs is first read (at most
    :data:`MAX_OPEN_SHARDS` at a time) and checked then: present, of the size the index
    records, a shard of this store (format, chromosome, params).  Shard files are
    resolved from the directory of the index, never through HDF5 external links (which
    HDF5 resolves against the current directory first)."""

    def __init__(self, h5, dataset, path, attrs):
        self.h5 = h5
        self.dataset = Path(dataset)
        self.path = Path(path)
        self.layout = attrs["layout"]
        self._attrs = attrs
        self._shards: dict = {}  # row -> open h5py.File, least recently used first
        self.pid = os.getpid()

    # what callers of the open file used
    @property
    def attrs(self):
        return self.h5.attrs

    def __getitem__(self, key):
        return self.h5[key]

    def __contains__(self, key):
        return key in self.h5

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for f in self._shards.values():
            f.close()
        self._shards.clear()
        self.h5.close()

    def rebuild(self) -> str:
        return rebuild_command(self.dataset, self._attrs.get("params"), self.layout)

    def shard_path(self, row: int) -> Path:
        return self.path.parent / self._attrs["shards"][row]["file"]

    def open_shard(self, row: int):
        """The open shard file of row ``row`` of the shards table, checked; a UserError
        naming the shard file and the command that repairs the store otherwise."""
        import h5py

        f = self._shards.pop(row, None)
        if f is None:
            rec = self._attrs["shards"][row]
            path = self.shard_path(row)
            rebuild = self.rebuild()
            try:
                size = path.stat().st_size
            except OSError:
                raise UserError(f"missing shard of the window store (the windows of chromosome {rec['chrom']}); "
                                f"rebuild it with `{rebuild}`", path=path) from None
            if size != rec["bytes"]:
                raise UserError(f"damaged shard of the window store ({size} bytes, the index {WINDOWS_FILE} records "
                                f"{rec['bytes']}: a partial copy?); rebuild it with `{rebuild}`", path=path)
            try:
                f = h5py.File(path, "r")
            except OSError as exc:
                raise UserError(f"damaged shard of the window store (not a readable HDF5 file: {_first_line(exc)}); "
                                f"rebuild it with `{rebuild}`", path=path) from None
            try:
                params = self.h5.attrs["params"]
                ok = (f.attrs.get("format") == SHARD_FORMAT and int(f.attrs.get("chrom", -1)) == rec["chrom"]
                      and f.attrs.get("params") == params and "windows" in f)
            except (OSError, KeyError, ValueError, TypeError):
                ok = False
            if not ok:
                f.close()
                raise UserError(f"not a shard of this window store (another chromosome, other params or another "
                                f"dataset); rebuild it with `{rebuild}`", path=path)
            while len(self._shards) >= MAX_OPEN_SHARDS:
                self._shards.pop(next(iter(self._shards))).close()
        self._shards[row] = f
        return f

    def group(self, i: int):
        """``(group, path)``: the HDF5 group of window ``i`` and the file holding it."""
        name = f"{int(i):06d}"
        if self.layout == "none":
            if name not in self.h5["windows"]:
                raise _damaged(self.path, self.dataset, f"no windows/{name}")
            return self.h5["windows"][name], self.path
        row = int(self._attrs["index"]["shard"][i])
        if not 0 <= row < len(self._attrs["shards"]):
            raise _damaged(self.path, self.dataset, f"index/shard of window {i} is {row}")
        f = self.open_shard(row)
        if name not in f["windows"]:
            raise UserError(f"damaged shard of the window store (no windows/{name}); rebuild it with "
                            f"`{self.rebuild()}`", path=self.shard_path(row))
        return f["windows"][name], self.shard_path(row)


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
    stored = a.get(CHECKSUM_ATTR)
    if not meta_only and stored is not None:
        # a full read verifies the window's checksum (docs/formats.md: its cost against
        # the read): a changed byte would otherwise train on other factors without a word
        try:
            every = {**arrays, **{k: g[k][()] for k in g if k not in arrays}}
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise _damaged(path, dataset, f"{g.name}: {type(exc).__name__}: {_first_line(exc)}") from None
        stored = stored.decode() if isinstance(stored, bytes) else str(stored)
        if window_checksum(every) != stored:
            params, layout = attrs.get("params"), attrs.get("layout")
            raise UserError(f"window {int(scalars['index'])} ({g.name.lstrip('/')}): checksum mismatch, its arrays "
                            f"changed after precompute-ld wrote them; repair the store with "
                            f"`{rebuild_command(dataset, params, layout)}` (it recomputes the damaged windows)",
                            path=path)

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

    ``chroms``: None for all, else an iterable of chromosome numbers to keep (of a
    sharded store, only their shards are opened).
    ``meta_only``: positions, indices and LD scores only (no G, z, P): what a trainer
    needs to plan batches when a :class:`WindowBatches` loader reads the factors.
    ``attrs["all_chroms"]``: the chromosomes the store has windows on.
    ``check_dataset=False`` skips the dataset link check (:func:`open_windows`) for a
    caller that has just made it.
    """
    import torch

    tdtype = getattr(torch, dtype)
    store, attrs = open_windows(dataset, check_dataset=check_dataset)
    with store:
        wchrom = attrs["index"]["chrom"]
        keep = np.arange(len(wchrom)) if chroms is None else np.flatnonzero(np.isin(wchrom, list(chroms)))
        attrs["all_chroms"] = sorted(int(c) for c in np.unique(wchrom))
        windows = [_window(store, attrs, i, tdtype, device, meta_only, dataset) for i in keep]
    return windows, attrs


def _window(store, attrs, i, tdtype, device, meta_only, dataset):
    g, path = store.group(i)
    return read_window(g, attrs, tdtype, device, meta_only, path=path, dataset=dataset)


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


class _Failed:
    """A UserError raised in a loader worker process, carried back as a value: torch
    re-raises a worker's exception with its traceback in the message, which would
    not be the one-line error a user gets from the same read in the main process."""

    def __init__(self, message: str):
        self.message = message


class _Loader:
    """A DataLoader whose items that are :class:`_Failed` raise their UserError here."""

    def __init__(self, loader):
        self._loader = loader

    def __len__(self):
        return len(self._loader)

    def __iter__(self):
        for item in self._loader:
            if isinstance(item, _Failed):
                raise UserError(item.message)
            yield item


class WindowBatches:
    """A map-style dataset of training batches: item ``i`` is the list of windows
    (factors read from the window store) of batch ``i``.  Each loader worker process
    opens its own read-only HDF5 handles (of a sharded store: only the shards of the
    windows it reads, at most :data:`MAX_OPEN_SHARDS` at a time), so a
    ``torch.utils.data.DataLoader`` with workers reads the next batches while the
    trainer computes.  Handles opened before a fork are not used by the child: it
    opens its own.

    The store's link to its dataset is checked by whoever built the batches (with
    :func:`load_windows`); the loader's own opens check format, finiteness and each
    window's checksum."""

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
        try:
            return self._get(i)
        except UserError as exc:
            from torch.utils.data import get_worker_info

            if get_worker_info() is None:
                raise
            return _Failed(str(exc))  # raised again, as it is, by the loader in the main process

    def _get(self, i):
        import torch

        if self._h5 is not None and self._h5.pid != os.getpid():
            # forked after the parent opened the store: HDF5 handles do not cross processes
            self._h5 = self._data = None
        if self._h5 is None:
            self._h5, self._attrs = open_windows(self.dataset, check_dataset=False)
        tdtype = getattr(torch, self.dtype)
        windows = [_window(self._h5, self._attrs, j, tdtype, "cpu", False, self.dataset)
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

        return _Loader(DataLoader(self, batch_size=None, shuffle=False, num_workers=workers,
                                  prefetch_factor=2 if workers else None, collate_fn=_identity))
