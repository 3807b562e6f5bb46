"""``varfx store check DATASET``: verify the integrity of a dataset's stores.

Four checks, each reported as one line per problem (docs/scale.md, "Checking a store"):

1. ``dataset.h5`` opens and validates (format, required arrays, finite values), and
   still has the content fingerprint ingest recorded in it;
2. ``windows.h5`` is a readable window store whose ``index/`` agrees with its
   ``windows/`` groups;
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
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..store import DATASET_FILE, WINDOWS_FILE, WINDOWS_FORMAT, WINDOWS_VERSION, check_format


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
    report = {"dataset": str(dataset), "ok": False, "problems": problems, "notes": notes,
              "dataset_h5": "ok", "windows": None, "plan_windows": None, "windows_checked": 0,
              "checksums": None, "dataset_link": None}

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
            check_format(h5, WINDOWS_FORMAT, WINDOWS_VERSION, wpath, rebuild=rebuild)
            params = json.loads(h5.attrs["params"])
            n_windows = int(h5.attrs["n_windows"])
            link = {"n_variants": int(h5.attrs["dataset_n_variants"]), "sha256": str(h5.attrs["dataset_sha256"])}
            index = {k: h5["index"][k][:] for k in ("chrom", "start", "end", "n", "n_plus")}
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
        expected = {f"{i:06d}" for i in range(n_windows)}
        rows = min(n_windows, *(len(v) for v in index.values()))

        def where(i):
            return _region(index["chrom"][i], index["start"][i], index["end"][i]) if i < rows else "not in index/"

        for name in sorted(expected - set(names)):
            i = int(name)
            problems.append(f"window {i} ({where(i)}): no group windows/{name}")
        for name in sorted(set(names) - expected):
            problems.append(f"window group windows/{name}: not one of the {n_windows} windows the store records")

        # 3. completeness against the plan
        if chrom is not None:
            from ..store.windows import plan_windows

            specs = plan_windows(chrom, bp, int(round(float(params["window_kb"]) * 1000)),
                                 int(round(float(params["flank_kb"]) * 1000)))
            report["plan_windows"] = len(specs)
            planned = {(s.chrom, s.start, s.end): s for s in specs}
            stored = {(int(index["chrom"][i]), int(index["start"][i]), int(index["end"][i])): i for i in range(rows)}
            for key, s in planned.items():
                if key not in stored:
                    problems.append(f"window {s.index} ({_region(*key)}): in the plan, missing from the store")
            for key, i in stored.items():
                if key not in planned:
                    problems.append(f"window {i} ({_region(*key)}): in the store, not in the plan "
                                    f"(window_kb {params['window_kb']:g}, flank_kb {params['flank_kb']:g})")
                    continue
                s = planned[key]
                if s.index != i:
                    problems.append(f"window {i} ({_region(*key)}): shifted (index {s.index} in the plan)")
                elif (int(index["n"][i]), int(index["n_plus"][i])) != (len(s.core_idx), len(s.plus_idx)):
                    problems.append(f"window {i} ({_region(*key)}): shifted ({int(index['n'][i])} core and "
                                    f"{int(index['n_plus'][i])} flanked variants; the plan has {len(s.core_idx)} "
                                    f"and {len(s.plus_idx)})")
                elif f"{i:06d}" in groups and not _same_variants(groups[f"{i:06d}"], s):
                    problems.append(f"window {i} ({_region(*key)}): shifted (its variants are not the plan's)")

        # 4b. checksums
        from ..store.windows import verify_window

        absent = []
        for name in sorted(set(names) & expected):
            i = int(name)
            result = verify_window(groups[name])
            report["windows_checked"] += 1
            if result == "absent":
                absent.append(i)
            elif result is not None:
                # precompute-ld would reuse the store (same options, same dataset): delete it first
                problems.append(f"window {i} ({where(i)}): {result} (windows/{name}); delete {WINDOWS_FILE} and "
                                f"rebuild it with `{rebuild}`")
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
        what += {"verified": ", checksums verified", "absent": ", no checksums"}.get(report["checksums"], "")
        return f"{report['dataset']}: OK ({what}; plan complete; link to dataset.h5 intact)"
    n = len(report["problems"])
    return f"{report['dataset']}: {n} problem{'s' if n != 1 else ''}"
