"""``varfx precompute-ld``: factorise the LD of every core window once.

For each core window ``(i)`` (a ``window_kb`` bin of a chromosome) and its flanked set
``(i)+`` (every variant within ``flank_kb`` of a core variant) we store the
eigendecomposition-derived factors ``P``, ``G``, ``z``, ``log|Lambda|`` and the LD
scores (docs/math.md).  They do not depend on the prior, so every training step
afterwards needs only a k x k solve.

Resumability: each finished window is written as its own small HDF5 part file (temp
file + rename) under ``DATASET/windows.parts/``; a re-run with the same parameters
skips the windows already there.  When all are done the parts are merged into
``DATASET/windows.h5`` (again temp file + rename) and the parts removed.  A kill at
any moment therefore loses at most the windows in flight, and never leaves a
half-written ``windows.h5``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import UserError
from ..store import (DATASET_FILE, DATASET_FORMAT, DATASET_VERSION, WINDOWS_FILE,
                     WINDOWS_FORMAT, WINDOWS_PARTS, WINDOWS_VERSION, atomic_path, check_format)


@dataclass
class WindowSpec:
    index: int
    chrom: int
    start: int  # core window [start, end) in bp
    end: int
    core_idx: np.ndarray
    plus_idx: np.ndarray


def dataset_file(dataset) -> Path:
    path = Path(dataset) / DATASET_FILE
    if not Path(dataset).is_dir():
        raise UserError("not a dataset directory (expected the output of `varfx ingest`)", path=dataset)
    if not path.is_file():
        raise UserError(f"no {DATASET_FILE} in the dataset directory (run `varfx ingest` first)", path=dataset)
    return path


def open_dataset(dataset):
    """Open ``DATASET/dataset.h5`` read-only after checking its format."""
    import h5py

    path = dataset_file(dataset)
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"cannot read HDF5 ({exc})", path=path) from None
    check_format(h5, DATASET_FORMAT, DATASET_VERSION, path)
    return h5


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


_worker_state: dict = {}


def _worker_init(dataset: str):
    # BLAS threads: one per worker process when several run side by side.
    import h5py

    from ..io.ld import open_ld

    h5 = h5py.File(Path(dataset) / DATASET_FILE, "r")
    _worker_state["h5"] = h5
    _worker_state["ld"] = open_ld(h5)
    var = h5["variants"]
    _worker_state["beta"] = var["z"][:] / np.sqrt(var["n"][:])


def _compute_window(spec: WindowSpec, eig_threshold: float, parts_dir: str, n_ref: int) -> int:
    from ..linalg.window import factorise_window

    import h5py

    ld = _worker_state["ld"]
    beta = _worker_state["beta"]
    core_pos = np.searchsorted(spec.plus_idx, spec.core_idx)
    center = (spec.start + spec.end) // 2
    R = ld.correlation(spec.plus_idx, spec.chrom, center)
    fac = factorise_window(R, core_pos, beta[spec.core_idx], eig_threshold=eig_threshold)
    ld_raw = np.asarray(fac["ld_score"], dtype=np.float64)
    if n_ref > 2:
        # Unbiased r^2 from a panel of n_ref people (as ldsc): r^2 - (1 - r^2)/(n_ref - 2),
        # summed over (i)+; the diagonal (r^2 = 1) needs no correction.
        ld_adj = ld_raw - (len(spec.plus_idx) - ld_raw) / (n_ref - 2)
    else:
        ld_adj = ld_raw
    out = Path(parts_dir) / f"w{spec.index:06d}.h5"
    with atomic_path(out) as tmp:
        with h5py.File(tmp, "w") as h:
            g = h.create_group("window")
            g.attrs.update(index=spec.index, chrom=spec.chrom, start=spec.start, end=spec.end,
                           logdet_lambda=float(fac["logdet_lambda"]), k=int(fac["k"]),
                           beta_outside=float(fac["beta_outside"]))
            for key, arr in (("core_idx", spec.core_idx), ("plus_idx", spec.plus_idx),
                             ("core_pos", core_pos), ("P", fac["P"]), ("G", fac["G"]),
                             ("z", fac["z"]), ("eigvals", fac["eigvals"]),
                             ("ld_score", ld_adj), ("ld_score_raw", ld_raw),
                             ("beta", beta[spec.core_idx])):
                g.create_dataset(key, data=np.asarray(arr))
    return spec.index


def _params(window_kb, flank_kb, eig_threshold, dataset_h5) -> dict:
    return {
        "window_kb": float(window_kb), "flank_kb": float(flank_kb),
        "eig_threshold": float(eig_threshold),
        "dataset_created": str(dataset_h5.attrs.get("created", "")),
        "n_variants": int(dataset_h5["variants"]["bp"].shape[0]),
    }


def run_precompute(dataset, *, window_kb=1000, flank_kb=1000, eig_threshold=1e-3, workers=1,
                   progress=True) -> dict:
    """Compute (or resume) the window store of a dataset; returns a summary dict."""
    from ..ui import progress as make_progress

    if window_kb <= 0:
        raise UserError(f"option --window-kb: expected a positive size, got {window_kb}")
    if flank_kb < 0:
        raise UserError(f"option --flank-kb: expected a size >= 0, got {flank_kb}")
    if not 0 < eig_threshold < 1:
        raise UserError(f"option --eig-threshold: expected a number in (0, 1), got {eig_threshold}")
    if workers < 1:
        raise UserError(f"option --workers: expected at least 1, got {workers}")
    dataset = Path(dataset)
    with open_dataset(dataset) as h5:
        chrom = h5["variants"]["chrom"][:].astype(np.int64)
        bp = h5["variants"]["bp"][:].astype(np.int64)
        params = _params(window_kb, flank_kb, eig_threshold, h5)
        n_ref = int(h5.attrs.get("n_ref", 0))
        N = float(h5.attrs["N"])
    if len(bp) == 0:
        raise UserError("the dataset has no variants", path=dataset / DATASET_FILE)
    specs = plan_windows(chrom, bp, int(round(window_kb * 1000)), int(round(flank_kb * 1000)))
    if not specs:
        raise UserError("no window has any variant", path=dataset / DATASET_FILE)

    parts = dataset / WINDOWS_PARTS
    params_file = parts / "params.json"
    if parts.exists():
        try:
            old = json.loads(params_file.read_text())
        except (OSError, ValueError):
            old = None
        if old != params:
            shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    if not params_file.exists():
        from ..store import write_json_atomic

        write_json_atomic(params_file, params)
    done = {int(p.stem[1:]) for p in parts.glob("w*.h5")}
    todo = [s for s in specs if s.index not in done]

    with make_progress(disable=not progress) as bar:
        task = bar.add_task("precompute-ld", total=len(specs), completed=len(specs) - len(todo), status="")
        if workers == 1 or len(todo) <= 1:
            _worker_init(str(dataset))
            try:
                for s in todo:
                    _compute_window(s, eig_threshold, str(parts), n_ref)
                    bar.update(task, advance=1, status=f"chr{s.chrom}:{s.start // 1000}kb n+={len(s.plus_idx)}")
            finally:
                _worker_state.pop("h5").close()
        else:
            env_threads = os.environ.get("OMP_NUM_THREADS")
            os.environ["OMP_NUM_THREADS"] = "1"
            try:
                with ProcessPoolExecutor(workers, initializer=_worker_init, initargs=(str(dataset),)) as ex:
                    futs = [ex.submit(_compute_window, s, eig_threshold, str(parts), n_ref) for s in todo]
                    for fut in as_completed(futs):
                        fut.result()
                        bar.update(task, advance=1)
            finally:
                if env_threads is None:
                    os.environ.pop("OMP_NUM_THREADS", None)
                else:
                    os.environ["OMP_NUM_THREADS"] = env_threads

    summary = _merge(dataset, specs, params, N, n_ref)
    shutil.rmtree(parts, ignore_errors=True)
    summary["resumed_windows"] = len(specs) - len(todo)
    warning = small_panel_warning(n_ref, max(len(s.core_idx) for s in specs))
    if warning:
        summary["warning"] = warning
        print(f"varfx: warning: {dataset}: {warning}", file=sys.stderr)
    return summary


def small_panel_warning(n_ref: int, max_core: int) -> str | None:
    """A warning when the LD panel is small against the windows (None otherwise).

    The likelihood inverts the panel's LD matrix of each window; when the panel is not
    the GWAS sample, that inverse is biased upwards (for a Wishart sample covariance of
    p variables from n people, E[S^-1] = Sigma^-1 n / (n - p - 1)), and the excess is
    read as heritability (docs/benchmarks.md, "Simulation").  Above p = n / 10 the
    factor exceeds 1.1."""
    if n_ref <= 0 or max_core * 10 <= n_ref:
        return None
    return (f"LD from a panel of {n_ref} people for windows of up to {max_core} variants: unless the panel is "
            "the GWAS sample, the full likelihood overestimates h2 (docs/benchmarks.md, 'Simulation: recovery "
            "of h2 by LD set-up'); prefer LD from the GWAS sample or a large reference")


def _merge(dataset: Path, specs, params, N, n_ref) -> dict:
    """Merge the part files into one chunked, compressed windows.h5 (atomically)."""
    import h5py

    from ..io.ld import outside_region_report

    parts = dataset / WINDOWS_PARTS
    n_plus = np.zeros(len(specs), np.int64)
    ks = np.zeros(len(specs), np.int64)
    outside = np.zeros(len(specs))
    with atomic_path(dataset / WINDOWS_FILE) as tmp:
        with h5py.File(tmp, "w") as out:
            out.attrs.update(format=WINDOWS_FORMAT, format_version=WINDOWS_VERSION,
                             varfx_version=__version__, params=json.dumps(params), N=N, n_ref=n_ref,
                             n_windows=len(specs))
            grp = out.create_group("windows")
            for s in specs:
                with h5py.File(parts / f"w{s.index:06d}.h5", "r") as part:
                    src = part["window"]
                    dst = grp.create_group(f"{s.index:06d}")
                    dst.attrs.update(dict(src.attrs))
                    for key in src:
                        arr = src[key][:]
                        big = arr.size > 4096
                        dst.create_dataset(key, data=arr, compression="gzip" if big else None,
                                           compression_opts=4 if big else None,
                                           chunks=True if big else None, shuffle=big)
                    n_plus[s.index] = len(s.plus_idx)
                    ks[s.index] = int(src.attrs["k"])
                    outside[s.index] = float(src.attrs["beta_outside"])
            idx = out.create_group("index")
            idx.create_dataset("chrom", data=np.array([s.chrom for s in specs], np.int16))
            idx.create_dataset("start", data=np.array([s.start for s in specs], np.int64))
            idx.create_dataset("end", data=np.array([s.end for s in specs], np.int64))
            idx.create_dataset("n", data=np.array([len(s.core_idx) for s in specs], np.int64))
            idx.create_dataset("n_plus", data=n_plus)
            idx.create_dataset("k", data=ks)
    return {
        "windows": len(specs),
        "variants": int(sum(len(s.core_idx) for s in specs)),
        "max_n_plus": int(n_plus.max()),
        "mean_n_plus": float(n_plus.mean()),
        "mean_k": float(ks.mean()),
        # ||(I - V V^T) beta|| / ||beta|| per window: the part of the summary statistics
        # the kept LD eigenvectors do not explain (large values flag an LD mismatch).
        "median_beta_outside": float(np.median(outside)),
        **outside_region_report(dataset / DATASET_FILE, specs),  # UKBB: variants given no LD (io/ld.py)
        **{k: v for k, v in params.items() if k in ("window_kb", "flank_kb", "eig_threshold")},
        "output": str(dataset / WINDOWS_FILE),
    }


def _read_window(g, attrs, tdtype, device="cpu", meta_only=False):
    """One stored window as a :class:`varfx.api.Window` (tensors unless ``meta_only``)."""
    import torch

    from ..api import Window

    a = g.attrs
    extra = {"N": attrs["N"], "n_ref": attrs["n_ref"], "k": int(a["k"])}
    if not meta_only:
        extra["P"] = torch.as_tensor(g["P"][:], dtype=tdtype, device=device)
        extra["beta"] = torch.as_tensor(g["beta"][:], dtype=tdtype, device=device)
    return Window(
        index=int(a["index"]), chrom=int(a["chrom"]), start=int(a["start"]), end=int(a["end"]),
        G=None if meta_only else torch.as_tensor(g["G"][:], dtype=tdtype, device=device),
        z=None if meta_only else torch.as_tensor(g["z"][:], dtype=tdtype, device=device),
        eigvals=g["eigvals"][:], logdet_lambda=float(a["logdet_lambda"]),
        plus_idx=g["plus_idx"][:], core_idx=g["core_idx"][:], core_pos=g["core_pos"][:],
        ld_score=g["ld_score"][:], extra=extra,
    )


def _open_windows(dataset):
    import h5py

    path = Path(dataset) / WINDOWS_FILE
    if not path.is_file():
        raise UserError(f"no {WINDOWS_FILE} (run `varfx precompute-ld {dataset}` first)", path=dataset)
    h5 = h5py.File(path, "r")
    check_format(h5, WINDOWS_FORMAT, WINDOWS_VERSION, path)
    attrs = {"N": float(h5.attrs["N"]), "n_ref": int(h5.attrs["n_ref"]), "params": json.loads(h5.attrs["params"])}
    return h5, attrs


def load_windows(dataset, chroms=None, dtype="float64", device="cpu", meta_only=False):
    """Read the window store; returns (list[Window], attrs dict).

    ``chroms``: None for all, else an iterable of chromosome numbers to keep.
    ``meta_only``: positions, indices and LD scores only (no G, z, P): what a trainer
    needs to plan batches when a :class:`WindowBatches` loader reads the factors.
    """
    import torch

    tdtype = getattr(torch, dtype)
    h5, attrs = _open_windows(dataset)
    with h5:
        wchrom = h5["index"]["chrom"][:]
        keep = np.arange(len(wchrom)) if chroms is None else np.flatnonzero(np.isin(wchrom, list(chroms)))
        attrs["all_chroms"] = sorted(int(c) for c in np.unique(wchrom))
        windows = [_read_window(h5["windows"][f"{i:06d}"], attrs, tdtype, device, meta_only) for i in keep]
    return windows, attrs


def _identity(x):
    return x


class WindowBatches:
    """A map-style dataset of training batches: item ``i`` is the list of windows
    (factors read from ``windows.h5``) of batch ``i``.  Each loader worker process
    opens its own read-only HDF5 handle, so a ``torch.utils.data.DataLoader`` with
    workers reads the next batches while the trainer computes."""

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
            self._h5, self._attrs = _open_windows(self.dataset)
        tdtype = getattr(torch, self.dtype)
        windows = [_read_window(self._h5["windows"][f"{j:06d}"], self._attrs, tdtype) for j in self.batches[i]]
        if not self.tracks or not windows:
            return windows, None
        # the per-base tracks of the batch's variants: one contiguous slice (the
        # dataset is sorted, and a batch's windows are read together)
        from .model import track_rows

        if self._data is None:
            self._data = open_dataset(self.dataset)
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
