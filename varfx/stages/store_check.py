"""``varfx store check DATASET``: verify the integrity of a dataset's stores.

Four checks, each reported as one line per problem (docs/scale.md, "Checking a store"):

1. ``dataset.h5`` opens and validates (format, required arrays, finite values), and
   still has the content fingerprint ingest recorded in it;
2. ``windows.h5`` is a readable window store whose ``index/`` agrees with its
   ``windows/`` groups (of a sharded store: each shard file present, of the size and
   SHA-256 the index records, a shard of this store, holding the windows the index
   puts there);
3. its windows are exactly those :func:`~varfx.store.windows.plan_windows` cuts from
   the dataset with the store's own ``window_kb``/``flank_kb``: missing, extra and
   shifted windows are named by index and region;
4. every window's arrays still have the checksum precompute-ld recorded
   (:func:`~varfx.store.windows.verify_window`), and the store's link to its dataset
   (``dataset_n_variants``/``dataset_sha256``) matches ``dataset.h5`` now.  The link is
   always rehashed here, never taken from the size and mtime stamp that ordinary opens
   trust: a check is the place to pay for the hash.

A missing directory or one that is not a dataset is a :class:`UserError` (exit 1);
everything else is collected, so that one run lists every problem.

Files in ``windows.shards/`` that the index does not list (a shard of a killed or
older run, a writer's temporary file, a file copied in by hand) are no problem: no
reader opens them.  They are listed as warnings (``stray_shards``), and the exit
status stays 0 when they are all there is.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..store import (DATASET_FILE, SHARD_FORMAT, WINDOWS_FILE, WINDOWS_FORMAT, WINDOWS_SHARDED_VERSION,
                     WINDOWS_SHARDS, WINDOWS_VERSION, check_format)
from ..store.windows import VERIFY_FULL_MAX_BYTES, rebuild_command, shard_table, store_bytes


def _region(chrom, start, end) -> str:
    return f"chr{int(chrom)}:{int(start)}-{int(end)}"


def run_store_check(dataset, strict: bool = False) -> dict:
    """Check ``DATASET``; returns the report (keys documented in docs/scale.md):
    ``ok`` is False when ``problems`` is not empty.  ``strict``: a store without
    checksums is a problem rather than a note."""
    from ..store.dataset import dataset_file, dataset_fingerprint, open_dataset, stored_fingerprint

    dataset = Path(dataset)
    dataset_file(dataset)  # not a dataset directory: one UserError, nothing to report on
    problems: list[str] = []
    notes: list[str] = []
    report = {"dataset": str(dataset), "ok": False, "problems": problems, "warnings": [], "notes": notes,
              "dataset_h5": "ok", "windows": None, "plan_windows": None, "windows_checked": 0,
              "checksums": None, "dataset_link": None, "layout": None, "shards": None,
              "missing_shards": [], "stray_shards": []}

    # 1. dataset.h5
    chrom = bp = fp = None
    try:
        with open_dataset(dataset) as d:
            chrom = d["variants"]["chrom"][:].astype(np.int64)
            bp = d["variants"]["bp"][:].astype(np.int64)
            fp = dataset_fingerprint(d)
            recorded = stored_fingerprint(d)
        if recorded is not None and recorded != fp:
            problems.append(f"{dataset / DATASET_FILE}: its variants no longer match the fingerprint ingest "
                            "recorded (edited after ingest)")
            report["dataset_h5"] = "edited"
    except UserError as exc:
        problems.append(str(exc))
        report["dataset_h5"] = "damaged"

    # 2. windows.h5
    wpath = dataset / WINDOWS_FILE
    if not wpath.is_file():
        problems.append(f"{wpath}: missing (run `varfx precompute-ld {dataset}`)")
        # no index lists them: every file there was left by a run that did not finish
        _stray_shards(report, dataset, set())
        return _finish(report)
    from ..store.h5 import open_h5_read

    rebuild = f"varfx precompute-ld {dataset}"
    try:
        h5 = open_h5_read(wpath, rebuild)
    except UserError as exc:
        problems.append(str(exc))
        return _finish(report)
    with h5:
        try:
            check_format(h5, WINDOWS_FORMAT, WINDOWS_SHARDED_VERSION, wpath, rebuild=rebuild, also=(WINDOWS_VERSION,))
            params = json.loads(h5.attrs["params"])
            n_windows = int(h5.attrs["n_windows"])
            link = {"n_variants": int(h5.attrs["dataset_n_variants"]), "sha256": str(h5.attrs["dataset_sha256"])}
            index = {k: h5["index"][k][:] for k in ("chrom", "start", "end", "n", "n_plus")}
            sharded = int(h5.attrs["format_version"]) == WINDOWS_SHARDED_VERSION
            if sharded:
                table = shard_table(h5, wpath, dataset, n_windows)
                shard_of = h5["index"]["shard"][:]
                _stray_shards(report, dataset, {rec["file"] for rec in table})
            else:
                _stray_shards(report, dataset, set())
                groups = h5["windows"]
                names = sorted(groups)
        except UserError as exc:
            problems.append(str(exc))
            return _finish(report)
        except (OSError, KeyError, ValueError, TypeError) as exc:
            problems.append(f"{wpath}: damaged ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''});"
                            f" rebuild it with `{rebuild}`")
            return _finish(report)
        report["windows"] = n_windows
        report["layout"] = "chrom" if sharded else "none"
        repair = rebuild_command(dataset, params, report["layout"])
        if store_bytes(dataset) > VERIFY_FULL_MAX_BYTES:
            repair += " --verify"  # a large store's re-run checks only shard sizes unless told

        # 4a. the link to dataset.h5
        if fp is not None:
            if fp == link:
                report["dataset_link"] = "ok"
            else:
                report["dataset_link"] = "changed"
                problems.append(f"{DATASET_FILE} changed since the windows were computed (the store is for "
                                f"{link['n_variants']} variants with content hash {link['sha256'][:12]}..., "
                                f"dataset.h5 now has {fp['n_variants']} with {fp['sha256'][:12]}...); rebuild it "
                                f"with `{rebuild}`")

        # 2b. index/ against windows/
        if any(len(v) != n_windows for v in index.values()):
            problems.append(f"{wpath}: index/ has {len(index['chrom'])} rows, the store records {n_windows} windows")
        rows = min(n_windows, *(len(v) for v in index.values()))

        def where(i):
            return _region(index["chrom"][i], index["start"][i], index["end"][i]) if i < rows else "not in index/"

        # 3. completeness against the plan (of the index; the groups are checked below)
        planned = {}
        if chrom is not None:
            from ..store.windows import plan_windows

            specs = plan_windows(chrom, bp, int(round(float(params["window_kb"]) * 1000)),
                                 int(round(float(params["flank_kb"]) * 1000)))
            report["plan_windows"] = len(specs)
            by_key = {(s.chrom, s.start, s.end): s for s in specs}
            stored = {(int(index["chrom"][i]), int(index["start"][i]), int(index["end"][i])): i for i in range(rows)}
            for key, s in by_key.items():
                if key not in stored:
                    problems.append(f"window {s.index} ({_region(*key)}): in the plan, missing from the store")
            for key, i in stored.items():
                if key not in by_key:
                    problems.append(f"window {i} ({_region(*key)}): in the store, not in the plan "
                                    f"(window_kb {params['window_kb']:g}, flank_kb {params['flank_kb']:g})")
                    continue
                s = by_key[key]
                if s.index != i:
                    problems.append(f"window {i} ({_region(*key)}): shifted (index {s.index} in the plan)")
                elif (int(index["n"][i]), int(index["n_plus"][i])) != (len(s.core_idx), len(s.plus_idx)):
                    problems.append(f"window {i} ({_region(*key)}): shifted ({int(index['n'][i])} core and "
                                    f"{int(index['n_plus'][i])} flanked variants; the plan has {len(s.core_idx)} "
                                    f"and {len(s.plus_idx)})")
                else:
                    planned[i] = s  # its variants are compared with its group's below

        # 2c, 3b and 4b, file by file: the window groups (of windows.h5, or of each shard)
        absent: list[int] = []
        if not sharded:
            expected = {f"{i:06d}" for i in range(n_windows)}
            _check_groups(groups, names, expected, n_windows, where, planned, absent, report, repair, None)
        else:
            report["shards"] = []
            for row, rec in enumerate(table):
                mine = {f"{int(i):06d}" for i in np.flatnonzero(shard_of == row)}
                entry = {"file": rec["file"], "chrom": rec["chrom"], "windows": rec["n_windows"], "status": "ok"}
                report["shards"].append(entry)
                spath = dataset / rec["file"]
                status, text = _check_shard_file(spath, rec, h5.attrs["params"])
                if status != "ok":
                    entry["status"] = status
                    if status == "missing":
                        report["missing_shards"].append(rec["file"])
                    problems.append(f"{spath}: {text} (chromosome {rec['chrom']}, {rec['n_windows']} windows); "
                                    f"re-run `{repair}` to recompute it")
                    if status in ("missing", "unreadable", "foreign"):
                        continue
                import h5py

                try:
                    f = h5py.File(spath, "r")
                except OSError:
                    continue  # of another size and unreadable: named above
                with f:
                    grp = f["windows"]
                    before = len(problems)
                    _check_groups(grp, sorted(grp), mine, n_windows, where, planned, absent, report, repair, spath)
                    if len(problems) > before and entry["status"] == "ok":
                        entry["status"] = "windows"
        checked = report["windows_checked"]
        if checked and len(absent) == checked:
            report["checksums"] = "absent"
            version = h5.attrs.get("varfx_version", "unknown")
            # precompute-ld reuses an up-to-date store as it is: it must go first
            text = (f"no checksums (written by varfx {version}, before per-window checksums): delete {wpath} and "
                    f"re-run `{rebuild}` to add them")
            (problems if strict else notes).append(text)
        elif absent:
            report["checksums"] = "partial"
            for i in absent:
                problems.append(f"window {i} ({where(i)}): no checksum, unlike the other windows (windows/{i:06d})")
        elif checked:
            report["checksums"] = "verified"
    return _finish(report)


def _stray_shards(report: dict, dataset: Path, indexed) -> None:
    """Name every entry of ``windows.shards/`` that is not one of the ``indexed`` files
    (paths relative to the dataset, as the index records them) in ``stray_shards`` and
    as a warning line."""
    where = dataset / WINDOWS_SHARDS
    if not where.is_dir():
        return
    for p in sorted(where.iterdir()):
        rel = f"{WINDOWS_SHARDS}/{p.name}"
        if rel in indexed:
            continue
        report["stray_shards"].append(rel)
        what = "directory" if p.is_dir() else "file"
        report["warnings"].append(f"{p}: stray {what} in {WINDOWS_SHARDS}/, not in the index of {WINDOWS_FILE} "
                                  "(left by a killed or older run, or copied in): never read; delete it")


def _check_shard_file(path: Path, rec: dict, params_attr) -> tuple[str, str]:
    """``(status, text)`` of one shard file against its row of the index: ``ok``,
    ``missing``, ``size``, ``checksum`` (its file SHA-256 differs from the index's),
    ``unreadable`` or ``foreign`` (another chromosome's, other params')."""
    import h5py

    from ..store import sha256_file

    if not path.is_file():
        return "missing", "missing shard"
    size = path.stat().st_size
    if size != rec["bytes"]:
        return "size", f"{size} bytes, the index records {rec['bytes']} (a partial copy?)"
    try:
        with h5py.File(path, "r") as f:
            if (f.attrs.get("format") != SHARD_FORMAT or int(f.attrs.get("chrom", -1)) != rec["chrom"]
                    or f.attrs.get("params") != params_attr or "windows" not in f):
                return "foreign", "not a shard of this store (another chromosome, other params or another dataset)"
    except (OSError, KeyError, ValueError, TypeError) as exc:
        return "unreadable", f"not a readable HDF5 file ({str(exc).splitlines()[0] if str(exc) else 'unreadable'})"
    if sha256_file(path) != rec["sha256"]:
        return "checksum", "file checksum differs from the one the index records"
    return "ok", ""


def _check_groups(groups, names, expected, n_windows, where, planned, absent, report, repair, shard) -> None:
    """The window groups of one file (windows.h5's ``windows/``, or a shard's): each
    expected one present, no other, its variants those of the plan, its checksum."""
    from ..store.windows import verify_window

    problems = report["problems"]
    inside = "" if shard is None else f" in {shard}"
    for name in sorted(expected - set(names)):
        i = int(name)
        problems.append(f"window {i} ({where(i)}): no group windows/{name}{inside}")
    for name in sorted(set(names) - expected):
        what = f"the {n_windows} windows the store records" if shard is None else "the windows the index puts there"
        problems.append(f"window group windows/{name}{inside}: not one of {what}")
    for name in sorted(set(names) & expected):
        i = int(name)
        if i in planned and not _same_variants(groups[name], planned[i]):
            problems.append(f"window {i} ({where(i)}): shifted (its variants are not the plan's)")
        result = verify_window(groups[name])
        report["windows_checked"] += 1
        if result == "absent":
            absent.append(i)
        elif result is not None:
            problems.append(f"window {i} ({where(i)}): {result} (windows/{name}{inside}); re-run `{repair}` "
                            "(it recomputes the damaged windows)")


def _same_variants(g, spec) -> bool:
    try:
        return (np.array_equal(g["core_idx"][()], spec.core_idx) and np.array_equal(g["plus_idx"][()], spec.plus_idx))
    except (OSError, KeyError, ValueError, TypeError):
        return False  # unreadable: the checksum check names it


def _finish(report: dict) -> dict:
    report["ok"] = not report["problems"]
    return report


def summary_line(report: dict) -> str:
    """The first line of the text report."""
    if report["ok"]:
        what = f"{report['windows_checked']} windows checked"
        if report.get("shards"):
            what += f" in {len(report['shards'])} shards"
        what += {"verified": ", checksums verified", "absent": ", no checksums"}.get(report["checksums"], "")
        stray = len(report.get("stray_shards") or [])
        tail = f"; {stray} stray file{'s' if stray != 1 else ''} in {WINDOWS_SHARDS}/" if stray else ""
        return f"{report['dataset']}: OK ({what}; plan complete; link to dataset.h5 intact{tail})"
    n = len(report["problems"])
    return f"{report['dataset']}: {n} problem{'s' if n != 1 else ''}"
