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
half-written ``windows.h5``.  With ``--shards chrom`` each chromosome's windows are
committed into their shard ``DATASET/windows.shards/chrC.h5`` as soon as they are all
computed (and their parts removed), and ``windows.h5``, their index, comes last; a
killed run keeps its finished shards.

Re-runs (:func:`_existing_windows`): an existing store, or the shards a killed run
left, of the same params is checked before it is reused (every window's checksum or
each shard's file hash up to ``VERIFY_FULL_MAX_BYTES``, the shards' sizes beyond), and
exactly its damaged windows and shards are recomputed, with one line each on stderr.

Full disks: the part files and the merged store are written through
:func:`varfx.store.h5.guarded_h5`, so HDF5 never meets a failed write; a full disk is
one error naming ``windows.h5``, and ``windows.parts/`` is removed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from ..errors import UserError
# the --ld-correction rules live in linalg/ (varfx plan resolves them too); re-exported here
from ..linalg.correction import (DEFAULT_EIG_FLOOR, DEFAULT_FLANK_NOISE_Z, DEFAULT_MAX_RANK_FRAC,  # noqa: F401
                                 DEFAULT_VAR_SHARE, LD_CORRECTIONS, check_correction_options,
                                 resolve_correction, truncation_of)
from ..store import (DATASET_FILE, WINDOWS_FILE, WINDOWS_PARTS, WINDOWS_SHARDED_VERSION, WINDOWS_SHARDS,
                     WINDOWS_VERSION, atomic_path, hdf5_os_error)
from ..store.dataset import dataset_file, dataset_fingerprint, file_stamp, open_dataset
from ..store.windows import (SHARD_LAYOUTS, SPACE_HINT, VERIFY_FULL_MAX_BYTES, WindowSpec, open_windows, plan_windows,
                             resolve_layout, store_bytes, stored_params, summarise_windows, write_windows)


_worker_state: dict = {}


def _worker_init(dataset: str):
    # BLAS threads: one per worker process when several run side by side.
    import h5py

    from ..io.ld import open_ld

    h5 = h5py.File(Path(dataset) / DATASET_FILE, "r")
    _worker_state["h5"] = h5
    _worker_state["ld"] = open_ld(h5)
    var = h5["variants"]
    # One N for the data set (its median): beta_hat = z / sqrt(N), and each variant's
    # own n_m enters the factors as n_m / N (docs/math.md, "Mixed sample sizes").
    # Dividing z by sqrt(n_m) instead, with noise sigma^2 / N, mis-states the noise of
    # every variant whose n_m is not the median (issue 8).
    N = float(h5.attrs["N"])
    n = var["n"][:].astype(np.float64)
    _worker_state["beta"] = var["z"][:] / np.sqrt(N)
    _worker_state["n_scale"] = n / N


def _compute_window(spec: WindowSpec, eig_threshold: float, parts_dir: str, n_ref: int,
                    truncation: dict | None = None) -> int:
    from ..linalg.window import factorise_window
    from ..store.h5 import guard, guarded_h5

    ld = _worker_state["ld"]
    beta = _worker_state["beta"]
    core_pos = np.searchsorted(spec.plus_idx, spec.core_idx)
    center = (spec.start + spec.end) // 2
    R = ld.correlation(spec.plus_idx, spec.chrom, center)
    n_scale = _worker_state["n_scale"][spec.core_idx]
    fac = factorise_window(R, core_pos, beta[spec.core_idx], eig_threshold=eig_threshold,
                           n_scale=None if np.all(n_scale == 1.0) else n_scale, **(truncation or {}))
    ld_raw = np.asarray(fac["ld_score"], dtype=np.float64)
    if n_ref > 2:
        # Unbiased r^2 from a panel of n_ref people (as ldsc): r^2 - (1 - r^2)/(n_ref - 2),
        # summed over (i)+; the diagonal (r^2 = 1) needs no correction.
        ld_adj = ld_raw - (len(spec.plus_idx) - ld_raw) / (n_ref - 2)
    else:
        ld_adj = ld_raw
    out = Path(parts_dir) / f"w{spec.index:06d}.h5"
    # temp file + rename: a kill leaves either no part or a whole one (resume reads it);
    # the guarded writer makes a full disk one UserError (it crosses the process pool
    # as one) instead of an HDF5 failure that would leave this worker's library broken
    with atomic_path(out) as tmp:
        with guarded_h5(tmp, Path(parts_dir).parent / WINDOWS_FILE, "the window store", SPACE_HINT) as h:
            g = h.create_group("window")
            g.attrs.update(index=spec.index, chrom=spec.chrom, start=spec.start, end=spec.end,
                           logdet_lambda=float(fac["logdet_lambda"]), k=int(fac["k"]),
                           k_threshold=int(fac["k_threshold"]),
                           beta_outside=float(fac["beta_outside"]))
            for key, arr in (("core_idx", spec.core_idx), ("plus_idx", spec.plus_idx),
                             ("core_pos", core_pos), ("P", fac["P"]), ("G", fac["G"]),
                             ("z", fac["z"]), ("eigvals", fac["eigvals"]),
                             ("ld_score", ld_adj), ("ld_score_raw", ld_raw),
                             ("beta", beta[spec.core_idx]), ("n_scale", n_scale)):
                g.create_dataset(key, data=np.asarray(arr))
                guard(h)
    return spec.index


def _params(window_kb, flank_kb, eig_threshold, dataset_h5, correction: dict | None = None) -> dict:
    fp = dataset_fingerprint(dataset_h5)
    return {
        "window_kb": float(window_kb), "flank_kb": float(flank_kb),
        "eig_threshold": float(eig_threshold),
        # the LD correction applied (resolved from --ld-correction): another option, or
        # the same option on another panel size, is another store
        **({} if correction is None else {"ld_correction": correction}),
        "dataset_created": str(dataset_h5.attrs.get("created", "")),
        "n_variants": fp["n_variants"],
        "dataset_sha256": fp["sha256"],
    }


def _die_with_parent(parent_pid: int) -> None:
    """Make this pool worker die with the process that started it.

    A ``kill -9`` of precompute-ld gives its workers no chance to clean up: without
    this they live on, blocked on the task queue or finishing their windows.  Linux's
    PR_SET_PDEATHSIG has the kernel send SIGKILL when the parent dies; a thread polling
    the parent pid covers the race where the parent died before prctl ran, and systems
    without prctl."""
    import ctypes
    import signal
    import time

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="varfx-parent-watch", daemon=True).start()


def _pool_worker_init(parent_pid: int, dataset: str | None) -> None:
    # No flush-to-zero here (varfx.linalg.ftz), unlike the solvers: measured (issue 8,
    # OpenBLAS 0.3.31, one thread) on an AR(1) R of n = 2000, numpy/scipy eigh and
    # factorise_window take the same time with and without FTZ/DAZ (within the noise
    # of a shared machine), and the eigenvectors hold no subnormal entry.
    _die_with_parent(parent_pid)
    if dataset is not None:
        _worker_init(dataset)


def _isolated_pool(workers: int, dataset: str | None):
    """A pool of forked processes for the window computations.

    Even with ``--workers 1`` the windows are computed in a child, which a kill -9 of
    this process takes down with it (:func:`_die_with_parent`).  Fork, explicitly: the
    workers' death-with-parent check compares their parent pid with this process's
    (under a forkserver that would be the server)."""
    import multiprocessing

    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_pool_worker_init, initargs=(os.getpid(), dataset))


#: test-only fault injection (tests/test_store_shards.py): ``N``: SIGKILL this process
#: right after it has committed its N-th shard file.
KILL_AFTER_SHARDS_ENV = "VARFX_TEST_KILL_AFTER_SHARDS"


def _existing_windows(dataset: Path, params: dict, specs, layout: str, verify: bool = False) -> dict:
    """What an existing store (windows.h5, its shards, or the shards a killed run left)
    of these ``params`` offers a run: ``reuse`` (window index -> (file, group) of each
    window that checks out), ``shards`` (chromosome -> ShardInfo of each shard file that
    can stay as it is), ``damaged`` (one line per damaged window or shard),
    ``checked`` (``checksums`` or ``sizes``: how) and ``up_to_date`` (the store has
    ``layout`` and nothing to recompute or rewrite)."""
    import h5py

    from ..store import sha256_file
    from ..store.windows import ShardInfo, read_shard_info, shard_name, verify_window

    full = verify or store_bytes(dataset) <= VERIFY_FULL_MAX_BYTES
    state = {"reuse": {}, "shards": {}, "damaged": [], "bad": set(), "checked": "checksums" if full else "sizes",
             "up_to_date": False}
    reuse, damaged = state["reuse"], state["damaged"]
    by_chrom: dict = {}
    for s in specs:
        by_chrom.setdefault(s.chrom, []).append(s)

    def salvage(path, names):
        """The windows of an existing store file that verify (a damaged shard keeps its good windows)."""
        try:
            with h5py.File(path, "r") as f:
                if json.loads(f.attrs["params"]) != params:
                    return
                for i in names:
                    g = f["windows"].get(f"{i:06d}")
                    bad = "missing" if g is None else verify_window(g) if full else None
                    if bad in (None, "absent"):
                        reuse[i] = (path, f"windows/{i:06d}")
                    else:
                        where = specs[i]
                        state["bad"].add(i)
                        damaged.append(f"{path}: window {i} (chr{where.chrom}:{where.start}-{where.end}): {bad}: "
                                       "recomputing it")
        except (OSError, KeyError, ValueError, TypeError):
            return

    index_layout, from_index = None, set()
    if stored_params(dataset) in ((WINDOWS_VERSION, params), (WINDOWS_SHARDED_VERSION, params)):
        try:
            store, attrs = open_windows(dataset, check_dataset=False)  # equal params: the same dataset content
        except UserError:
            store = None  # damaged: the shards a killed run or this store left are still looked at below
        if store is not None:
            with store:
                idx = attrs["index"]
                same_plan = len(idx["chrom"]) == len(specs) and all(
                    (int(idx["chrom"][s.index]), int(idx["start"][s.index]), int(idx["n_plus"][s.index]))
                    == (s.chrom, s.start, len(s.plus_idx)) for s in specs)
                if same_plan and attrs["layout"] == "none":
                    index_layout = "none"
                    salvage(dataset / WINDOWS_FILE, [s.index for s in specs])
                elif same_plan:
                    index_layout = "chrom"
                    k_threshold, outside = store["index"]["k_threshold"][:], store["index"]["beta_outside"][:]
                    for row, rec in enumerate(attrs["shards"]):
                        path = dataset / rec["file"]
                        names = [int(i) for i in np.flatnonzero(idx["shard"] == row)]
                        problem = None
                        if not path.is_file():
                            problem = "missing"
                        elif path.stat().st_size != rec["bytes"]:
                            problem = f"{path.stat().st_size} bytes, the index records {rec['bytes']}"
                        elif full and sha256_file(path) != rec["sha256"]:
                            problem = "its file checksum differs from the index's"
                        else:
                            try:
                                store.open_shard(row)
                            except UserError:
                                problem = "not a shard of this store"
                        if problem is None:
                            state["shards"][rec["chrom"]] = ShardInfo(
                                rec["chrom"], rec["file"], rec["bytes"], rec["sha256"], names,
                                [int(idx["k"][i]) for i in names],
                                [int(k_threshold[i]) for i in names], [float(outside[i]) for i in names])
                            from_index.add(rec["chrom"])
                            for i in names:
                                reuse[i] = (path, f"windows/{i:06d}")
                        else:
                            damaged.append(f"{path}: shard of chromosome {rec['chrom']}: {problem}: rewriting it "
                                           "(its windows that check out are kept)")
                            if path.is_file():
                                salvage(path, names)
                            state["bad"].update(i for i in names if i not in reuse)
    # shards not in an index: those a killed run committed (or a store being re-laid out)
    for c, sp in by_chrom.items():
        names = [s.index for s in sp]
        if c in state["shards"] or any(i in reuse for i in names) or not (dataset / shard_name(c)).is_file():
            continue
        info = read_shard_info(dataset, c, params, names)
        if info is None:
            continue
        before = len(damaged)
        salvage(dataset / shard_name(c), names)
        if len(damaged) == before:
            state["shards"][c] = info
    state["up_to_date"] = (index_layout == layout and not damaged and len(reuse) == len(specs)
                           and (layout == "none" or from_index == set(by_chrom)))
    return state


def _up_to_date(dataset: Path, params: dict, specs=None, layout: str = "none", verify: bool = False):
    """The summary of an existing window store computed with ``params`` (the same options
    and the same dataset content hash) that opens and checks out (every window's
    checksum when affordable: :func:`_existing_windows`), else None."""
    if specs is None:
        if stored_params(dataset) not in ((WINDOWS_VERSION, params), (WINDOWS_SHARDED_VERSION, params)):
            return None
        try:
            h5, _ = open_windows(dataset)
        except UserError:
            return None  # damaged or foreign: rebuild it
        with h5:
            return summarise_windows(h5, dataset / WINDOWS_FILE)
    if not _existing_windows(dataset, params, specs, layout, verify)["up_to_date"]:
        return None
    with open_windows(dataset, check_dataset=False)[0] as h5:
        return summarise_windows(h5, dataset / WINDOWS_FILE)


class _ShardCommitter:
    """Commits each chromosome's shard as soon as all its windows are there (part files,
    or windows reused from an existing store), in this process: the one writer of the
    store, whether the windows came from local workers or a Dask cluster."""

    def __init__(self, dataset: Path, specs, params, N, n_ref, fingerprint, state):
        self.dataset, self.params, self.N, self.n_ref, self.fingerprint = dataset, params, N, n_ref, fingerprint
        self.reuse = state["reuse"]
        self.infos = dict(state["shards"])
        self.by_chrom: dict = {}
        for s in specs:
            self.by_chrom.setdefault(s.chrom, []).append(s)
        self.missing: dict = {}
        self.written: list[int] = []

    def start(self) -> None:
        """Once the parts directory is settled (the parts of other params removed):
        what each chromosome still lacks; commit the chromosomes that lack nothing."""
        parts = self.dataset / WINDOWS_PARTS
        self.missing = {c: {s.index for s in sp if s.index not in self.reuse
                            and not (parts / f"w{s.index:06d}.h5").is_file()}
                        for c, sp in self.by_chrom.items()}
        self.commit_ready()

    def done(self, spec) -> None:
        self.missing[spec.chrom].discard(spec.index)
        if not self.missing[spec.chrom]:
            self.commit(spec.chrom)

    def commit_ready(self) -> None:
        for c in self.by_chrom:
            if not self.missing[c]:
                self.commit(c)

    def commit(self, chrom) -> None:
        from ..store import WINDOWS_SHARDED_VERSION as V3
        from ..store.windows import write_shard

        if chrom in self.infos:
            return
        if stored_params(self.dataset) is not None and stored_params(self.dataset)[0] == V3:
            # an index of shards about to change: a reader must not meet a new shard
            # through the old index (the new one is written when every shard is there)
            (self.dataset / WINDOWS_FILE).unlink()
        sp = self.by_chrom[chrom]
        self.infos[chrom] = write_shard(self.dataset, chrom, sp, self.params, self.N, self.n_ref, self.fingerprint,
                                        reuse={s.index: self.reuse[s.index] for s in sp if s.index in self.reuse})
        self.written.append(int(chrom))
        for s in sp:  # in the shard now: the parts are not needed to resume
            (self.dataset / WINDOWS_PARTS / f"w{s.index:06d}.h5").unlink(missing_ok=True)
        kill_at = os.environ.get(KILL_AFTER_SHARDS_ENV)
        if kill_at and int(kill_at) == len(self.written):
            import signal

            os.kill(os.getpid(), signal.SIGKILL)

    def all_shards(self):
        return [self.infos[c] for c in self.by_chrom]


def _remove_stale_shards(dataset: Path, keep) -> None:
    """Remove the shard files no longer in the store (another layout, other chromosomes)."""
    shards = dataset / WINDOWS_SHARDS
    if not shards.is_dir():
        return
    keep = {Path(k).name for k in keep}
    for p in shards.iterdir():
        if p.name not in keep and (p.name.startswith("chr") or p.name.startswith(".chr")):
            p.unlink(missing_ok=True)
    if not any(shards.iterdir()):
        shards.rmdir()


def run_precompute(dataset, *, window_kb=1000, flank_kb=1000, eig_threshold=1e-3, workers=1,
                   progress=True, ld_correction="auto", max_rank_frac=None, var_share=None,
                   flank_noise_z=None, dask_scheduler=None, shards="auto", verify=False, eig_floor=None) -> dict:
    """Compute (or resume, or reuse) the window store of a dataset; returns a summary dict.

    A store computed with the same options from the same dataset content is reused as
    it is (``"up_to_date": True`` in the summary) once it checks out; its damaged
    windows or shards are recomputed, and only those (:func:`_existing_windows`).
    ``dask_scheduler``: compute the windows as tasks on that Dask cluster (``local:N``
    for a LocalCluster of N processes) instead of ``workers`` local processes
    (varfx/stages/precompute_dask.py).  ``shards``: ``none`` (one windows.h5),
    ``chrom`` (one shard file per chromosome and windows.h5 their index) or ``auto``
    (:func:`varfx.store.windows.resolve_layout`).  ``verify``: check every window's
    checksum of an existing store whatever its size."""
    import math

    for name, val, ok, want in (("--window-kb", window_kb, lambda v: v > 0, "a positive size"),
                                ("--flank-kb", flank_kb, lambda v: v >= 0, "a size >= 0"),
                                ("--eig-threshold", eig_threshold, lambda v: 0 < v < 1, "a number in (0, 1)")):
        if not (isinstance(val, (int, float)) and math.isfinite(val) and ok(val)):
            raise UserError(f"option {name}: expected {want}, got {val}")
    if int(workers) != workers or workers < 1:
        raise UserError(f"option --workers: expected at least 1, got {workers}")
    if dask_scheduler is not None:
        from .precompute_dask import parse_address, require_distributed

        parse_address(dask_scheduler)
        require_distributed()  # missing: one error now, not after the planning
        if workers != 1:
            # two ways of saying how many processes: refuse rather than pick one
            raise UserError(f"option --workers {workers}: not with --dask-scheduler (the cluster's workers compute "
                            "the windows; local:N starts N local worker processes)")
    check_correction_options(ld_correction, max_rank_frac, var_share, flank_noise_z, eig_floor)
    if shards not in SHARD_LAYOUTS:
        raise UserError(f"option --shards: expected one of {', '.join(SHARD_LAYOUTS)}, got {shards!r}")
    dataset = Path(dataset)
    # the stamp before the read: a write to dataset.h5 from now on makes every later
    # open of windows.h5 rehash the variants (store/windows.py, _link_unchanged)
    stamp = file_stamp(dataset_file(dataset))
    with open_dataset(dataset) as h5:
        chrom = h5["variants"]["chrom"][:].astype(np.int64)
        bp = h5["variants"]["bp"][:].astype(np.int64)
        n_ref = int(h5.attrs.get("n_ref", 0))
        N = float(h5.attrs["N"])
        if len(bp) == 0:
            raise UserError("the dataset has no variants", path=dataset / DATASET_FILE)
        specs = plan_windows(chrom, bp, int(round(window_kb * 1000)), int(round(flank_kb * 1000)))
        if not specs:
            raise UserError("no window has any variant", path=dataset / DATASET_FILE)
        correction = resolve_correction(ld_correction, n_ref, max(len(s.plus_idx) for s in specs),
                                        max_rank_frac, var_share, flank_noise_z, path=dataset / DATASET_FILE,
                                        gwas_n=N, eig_floor=eig_floor)
        params = _params(window_kb, flank_kb, eig_threshold, h5, correction)
        fingerprint = {"n_variants": params["n_variants"], "sha256": params["dataset_sha256"], **stamp}
    truncation = truncation_of(correction)
    layout = resolve_layout(shards, specs)
    dask_info: dict = {}
    summary, written, repaired = _commit_store(dataset, specs, params, N, n_ref, fingerprint, layout, verify,
                                               eig_threshold, int(workers), progress, truncation, dask_scheduler,
                                               dask_info)
    summary.update(shards_written=written, repaired_windows=repaired)
    if dask_scheduler is not None:
        # the workers the cluster had (None: nothing left to compute, no connection made)
        summary.update(dask_scheduler=str(dask_scheduler), dask_workers=dask_info.get("workers"))
    # UKBB/PolyFun references: window variants that fall outside the window's LD region
    # get no correlation; they are counted and warned about (io/ld.py)
    from ..io.ld import outside_region_report

    summary.update(outside_region_report(dataset / DATASET_FILE, specs))
    # what was done about the panel's sampling noise (replaces the small-panel warning)
    report = {**correction, "windows_truncated": summary.pop("windows_truncated", 0)}
    summary["ld_correction"] = report
    # stderr stays quiet when nothing was done (as before), unless the panel would have
    # been corrected but for its size against the GWAS: that choice is worth one line
    if report["method"] != "none" or report.get("reason"):
        print(f"varfx: {dataset}: {correction_text(report, len(specs))}", file=sys.stderr)
    return summary


def _commit_store(dataset: Path, specs, params, N, n_ref, fingerprint, layout, verify, eig_threshold, workers,
                  progress, truncation, dask_scheduler, dask_info):
    """Reuse, repair, resume or compute the store of ``specs`` in ``layout``; returns its
    summary, the chromosomes whose shard this run wrote and the damaged windows it found
    (and recomputed or reused from elsewhere)."""
    state = _existing_windows(dataset, params, specs, layout, verify)
    for line in state["damaged"]:
        print(f"varfx: {line}", file=sys.stderr)
    repaired = sorted(state["bad"])
    if state["up_to_date"]:
        how = ("every window's checksum verified" if state["checked"] == "checksums" else
               f"shard sizes checked; the store is over {VERIFY_FULL_MAX_BYTES / 2**30:g} GiB: `--verify` or "
               f"`varfx store check {dataset}` verifies every window's checksum")
        print(f"varfx: {dataset / WINDOWS_FILE} is up to date (same options, same dataset.h5, {how}): nothing "
              "recomputed", file=sys.stderr)
        with open_windows(dataset, check_dataset=False)[0] as h5:
            summary = summarise_windows(h5, dataset / WINDOWS_FILE)
        summary.update(resumed_windows=summary["windows"], up_to_date=True)
        return summary, [], repaired
    parts = dataset / WINDOWS_PARTS
    committer = None
    try:
        if layout == "chrom":
            committer = _ShardCommitter(dataset, specs, params, N, n_ref, fingerprint, state)
        todo = _compute_parts(dataset, parts, specs, params, eig_threshold, n_ref, workers, progress,
                              truncation, dask_scheduler, dask_info, skip=set(state["reuse"]),
                              before=committer.start if committer else None,
                              done=committer.done if committer else None)
        # in this process: the guarded writer keeps a full disk away from HDF5
        if committer is not None:
            committer.commit_ready()
            infos = committer.all_shards()
            write_windows(dataset, specs, params, N, n_ref, fingerprint, shards=infos)
            _remove_stale_shards(dataset, [i.file for i in infos])
        else:
            write_windows(dataset, specs, params, N, n_ref, fingerprint, reuse=state["reuse"])
            _remove_stale_shards(dataset, [])
    except Exception as exc:
        # a full disk, a read-only dataset directory, non-finite factors: no
        # windows.parts/ is left behind (a kill or Ctrl-C keeps it, to resume, and
        # so does a Dask cluster that lost its workers or its scheduler); the shards
        # committed so far are whole and kept
        from .precompute_dask import WorkersLost

        if isinstance(exc, WorkersLost):
            raise
        shutil.rmtree(parts, ignore_errors=True)
        os_error = hdf5_os_error(exc, parts)
        if os_error is not None:
            raise os_error from None
        from concurrent.futures.process import BrokenProcessPool

        if isinstance(exc, BrokenProcessPool):
            raise UserError("a precompute-ld worker process died (killed, or out of memory: try fewer "
                            "--workers or a smaller --window-kb/--flank-kb)", path=dataset) from None
        raise
    shutil.rmtree(parts, ignore_errors=True)
    with open_windows(dataset, check_dataset=False)[0] as h5:
        summary = summarise_windows(h5, dataset / WINDOWS_FILE)
    summary.update(resumed_windows=len(specs) - len(todo), up_to_date=False)
    return summary, committer.written if committer else [], repaired


def _compute_parts(dataset: Path, parts: Path, specs, params, eig_threshold, n_ref, workers, progress,
                   truncation=None, dask_scheduler=None, dask_info=None, skip=(), before=None, done=None):
    """Compute the part file of every window not already under ``parts`` (from a run
    with the same params) nor in ``skip`` (reused from an existing store); returns the
    windows computed.  With ``dask_scheduler`` they are computed on that Dask cluster
    (``dask_info["workers"]``: its worker count).  ``before()`` is called once the
    parts directory is settled, ``done(spec)`` as each window's part is there."""
    from ..ui import stage_progress

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
    have = {int(p.stem[1:]) for p in parts.glob("w*.h5")}
    todo = [s for s in specs if s.index not in have and s.index not in skip]
    if before is not None:
        before()  # e.g. commit the shards whose windows are all there already

    with stage_progress(progress) as bar:
        task = bar.add_task("precompute-ld", total=len(specs), completed=len(specs) - len(todo),
                            status="") if bar else None

        def advance(status=""):
            if bar is not None:
                bar.update(task, advance=1, status=status)

        if not todo:
            return todo
        if dask_scheduler is not None:
            from .precompute_dask import compute_parts_dask

            n = compute_parts_dask(dask_scheduler, dataset, parts, todo, params, eig_threshold, n_ref, truncation,
                                   advance, done=done)
            if dask_info is not None:
                dask_info["workers"] = n
            return todo
        n_proc = min(workers, len(todo))
        env_threads = os.environ.get("OMP_NUM_THREADS")
        if n_proc > 1:
            os.environ["OMP_NUM_THREADS"] = "1"  # BLAS: one thread per worker side by side
        try:
            with _isolated_pool(n_proc, str(dataset)) as ex:
                futs = {ex.submit(_compute_window, s, eig_threshold, str(parts), n_ref, truncation): s for s in todo}
                try:
                    for fut in as_completed(futs):
                        fut.result()
                        s = futs[fut]
                        advance(f"chr{s.chrom}:{s.start // 1000}kb n+={len(s.plus_idx)}")
                        if done is not None:
                            done(s)
                except BaseException:
                    # stop now rather than let the pool finish every queued window
                    for f in futs:
                        f.cancel()
                    raise
        finally:
            if env_threads is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = env_threads
    return todo


def correction_text(report: dict, n_windows: int) -> str:
    """The one line precompute-ld prints about the LD correction it applied."""
    if report["method"] == "none":
        why = " (panel size unknown or windows small against it)" if report["requested"] == "auto" else ""
        if report.get("reason") == "panel_not_smaller_than_gwas":
            why = " (the LD panel has at least as many people as the GWAS: in-sample or biobank LD)"
        return f"no LD correction{why}: every eigen-component above the eigen-threshold kept"
    if report["method"] == "rank":
        what = (f"LD correction rank: at most {report['max_rank']} eigen-components per window "
                f"({report['max_rank_frac']:g} x {report['n_ref']} panel people"
                + (f"; and {report['core_rank_frac']:g} x its core variants" if report.get("core_rank_frac") else "")
                + ")")
        if report.get("eig_floor"):
            what += f", eigenvalues at least {report['eig_floor']:g} x the window's mean"
    else:
        what = f"LD correction share: the components reaching {report['var_share']:g} of each window's LD variance"
        if report.get("eig_floor"):
            what += f" and at least {report['eig_floor']:g} x its mean eigenvalue"
    if report.get("flank_r_min"):
        what += f", core-flank |r| < {report['flank_r_min']:.3g} set to 0"
    return f"{what}; {report['windows_truncated']} of {n_windows} windows truncated (docs/math.md)"
