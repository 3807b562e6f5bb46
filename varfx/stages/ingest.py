"""``varfx ingest``: summary statistics + LD reference -> a harmonised dataset.

:func:`run_ingest` reads the summary statistics and the LD reference, harmonises them
(:mod:`varfx.io.harmonise`) and writes ``OUT/dataset.h5`` atomically: on any error
nothing is left behind.  The layout is documented in ``docs/formats.md``.
"""

from __future__ import annotations

import datetime as _dt
import json
import sys
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import UserError
from ..store import DATASET_FILE, DATASET_FORMAT, DATASET_VERSION, atomic_dir, input_record
from ..store.dataset import record_fingerprint
from ..store.h5 import guard as _guard  # the writers below call it between chunks
from ..store.h5 import guarded_h5

def _input_record(role: str, path) -> dict:
    return input_record(path, role)


def detect_ld_format(ld):
    """The registered :class:`varfx.api.LDFormat` whose ``sniff`` accepts ``ld`` (formats
    are asked in registration order: built-ins ``vcf``, ``ukbb``, ``plink``, then
    third-party ones); otherwise a :class:`UserError` saying what was expected."""
    from ..plugins import get_ld_formats

    p = Path(ld)
    formats = get_ld_formats()
    for fmt in formats.values():
        try:
            if fmt.sniff(p):
                return fmt
        except Exception:  # noqa: BLE001 - a sniffer must not raise; one that does says no
            continue
    names = ", ".join(formats)
    if p.is_dir():
        raise UserError(
            "directory has no UKBB/PolyFun LD region files (chr{C}_{START}_{END}.npz + .gz); "
            f"for a PLINK panel give its prefix or .bed path (LD formats: {names})",
            path=p,
        )
    raise UserError(
        "no such LD reference: expected a PLINK prefix or .bed path (.bed/.bim/.fam) or a directory of "
        f"UKBB/PolyFun .npz/.gz region files (LD formats: {names})",
        path=p,
    )


def detect_ld_kind(ld) -> str:
    """The name of the LD format of ``ld`` (``"plink"``, ``"vcf"``, ``"ukbb"``, or a
    plugin's): see :func:`detect_ld_format`."""
    return detect_ld_format(ld).name


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError("exists and is not a directory: expected a dataset directory to write", path=out)
    if out.is_dir() and any(out.iterdir()) and not (out / DATASET_FILE).exists():
        raise UserError(
            f"exists and is not a varfx dataset (no {DATASET_FILE}); refusing to replace it: choose a new directory",
            path=out,
        )


def run_ingest(sumstats, ld, out, *, n=None, build="hg19", progress=True, columns=None,
               sumstats_format=None, info_min=None, maf_min=None, keep_multi_allelic=False,
               liftover=None, liftover_move=False, ld_maf_min=0.0, exclude_lrld=None, ld_region=None,
               annotations=None, fasta=None, feature_window=256, feature_dtype="float16",
               ambiguous_maf_max=0.0, ld_people=None, dry_run=False) -> dict:
    """Harmonise ``sumstats`` with the LD reference ``ld`` and write the dataset ``out``.

    ``columns`` maps sumstats fields to header names (``{"z": "ZSCORE"}``, the
    ``--col-*`` options), ``sumstats_format`` forces a format instead of detecting it.
    Before harmonisation, rows are filtered (:func:`varfx.io.sumstats.filter_sumstats`):
    chromosomes other than 1-22, INFO below ``info_min`` (default 0.6), minor allele
    frequency below ``maf_min`` (default 0.001), and multi-allelic positions unless
    ``keep_multi_allelic``.

    Returns a JSON-serialisable summary: what was read, filtered (by reason), matched,
    flipped and dropped (by reason), the median N and the LD reference's kind and size;
    ``read = matched + sum(filtered) + sum(dropped)``.

    ``liftover`` (a chain file) lifts the summary statistics into the LD reference's
    build (variants that fail are dropped and counted, or moved next to a neighbour with
    ``liftover_move``); without it an obvious build mismatch is detected and reported.
    ``ld_maf_min`` and ``exclude_lrld`` (a long-range LD region file) drop panel variants;
    ``ld_region`` (``22:16000000-17000000``) restricts any LD reference to a region (a VCF
    panel is read only there; it needs an index).  Reference variants with an allele that
    is not A/C/G/T (indels, ``0``) are dropped and counted (``ld_non_acgt``).  ``annotations`` (a manifest) and ``fasta`` add
    features (``docs/features.md``) in a ``feature_window``-bp window.

    ``ld_people`` declares how many people the LD reference was estimated from
    (``n_ref``): a PLINK/VCF panel counts its own, a UKBB/PolyFun matrix records none.
    precompute-ld's LD correction depends on it (docs/math.md, "LD from a small panel"):
    a matrix of unknown size gets no correction, and LD from the GWAS sample itself
    (declared as the GWAS N) gets none because it is the GWAS's own LD.

    ``dry_run``: read, filter and match exactly as the run does (so the counts and the
    errors are the run's), then write the first :data:`DRY_RUN_VARIANTS` variants into
    memory instead of ``out`` to time and size the writing; returns the plan
    (:func:`varfx.store.dry_run.plan`) and leaves the disk as it was.
    """
    import time

    t_start = time.perf_counter()
    from ..genome import parse_region
    from ..io.harmonise import harmonise
    from ..io.plink import acgt_mask
    from ..io.sumstats import INFO_MIN, MAF_MIN, filter_sumstats, read_sumstats

    info_min = INFO_MIN if info_min is None else info_min
    maf_min = MAF_MIN if maf_min is None else maf_min
    if ld_people is not None and not (isinstance(ld_people, (int, np.integer)) and ld_people >= 3):
        raise UserError(f"option --ld-people {ld_people!r}: expected a whole number of people >= 3")
    sumstats, ld, out = Path(sumstats), Path(ld), Path(out)
    _check_out(out)
    # parsed before anything is read, so that `--ld-region banana` fails at once
    region = parse_region(ld_region, option="--ld-region") if ld_region is not None else None
    ld_format = detect_ld_format(ld)
    kind = ld_format.name
    genotypes = ld_format.layout == "genotypes"
    if ld_format.layout not in ("genotypes", "regions"):
        raise UserError(f"LD format {kind!r} has layout {ld_format.layout!r}: expected 'genotypes' or 'regions'")
    feature_entries = []
    if annotations is not None or fasta is not None:
        from ..features.manifest import entries_for_ingest

        feature_entries = entries_for_ingest(annotations=annotations, fasta=fasta)
    chain = None
    if liftover is not None:
        from ..io.liftover import load_chain

        chain = load_chain(liftover)
    lrld = None
    if exclude_lrld is not None:
        from ..io.ld_filters import read_lrld

        lrld = read_lrld(exclude_lrld)

    from ..ui import stage_progress

    with stage_progress(progress) as bar:
        task = bar.add_task("ingest", total=None, status="reading summary statistics") if bar else None
        ss_read = read_sumstats(sumstats, n=n, columns=columns, format=sumstats_format)
        if bar is not None:
            bar.update(task, status="filtering summary statistics")
        keep, filtered = filter_sumstats(ss_read, info_min=info_min, maf_min=maf_min,
                                         keep_multi_allelic=keep_multi_allelic)
        ss = ss_read if keep.all() else ss_read.subset(keep)
        filters = {
            "info_min": float(info_min),
            "info_column": ss_read.columns.get("info"),
            "maf_min": float(maf_min),
            "freq_column": ss_read.columns.get("freq"),
            "multi_allelic": "keep" if keep_multi_allelic else "drop",
        }
        lift_counts = None
        if chain is not None:
            from ..io.liftover import lift_table

            if bar is not None:
                bar.update(task, status="lifting positions")
            ss, _, lrep = lift_table(chain, ss, move_to_neighbour=liftover_move)
            lift_counts = lrep.counts
            build = chain.target_build or build
        if bar is not None:
            bar.update(task, status="reading the LD reference")

        def status(msg, total=None):
            if bar is not None:
                if total is None:
                    bar.update(task, status=msg)
                else:
                    bar.update(task, status=msg, total=total, completed=0)

        if genotypes:
            panel = ld_format().open(ld, region=region, maf_min=ld_maf_min)
            inputs = list(panel.inputs)
            status("checking the panel")
            panel_freq, mono = panel.summary_stats()
            ref = panel.bim
            excluded = {"monomorphic_in_ld": mono}
            if ld_maf_min:
                from ..io.ld_filters import maf_filter

                excluded["low_maf_in_ld"] = ~maf_filter(panel_freq, ld_maf_min) & ~mono
            if lrld is not None:
                from ..io.ld_filters import in_regions

                excluded["long_range_ld"] = in_regions(ref["chrom"], ref["bp"], lrld)
            ref_filters = _reference_filters(ref, region, acgt_mask)
            excluded.update(ref_filters["excluded"])
            h = harmonise(ss, ref, ref_excluded=excluded, ref_freq=panel_freq, ambiguous_maf_max=ambiguous_maf_max)
            extra = {"ld_monomorphic": int(mono.sum()), **ref_filters["counts"]}
            if hasattr(panel, "counts"):  # VCF: records skipped, by reason
                extra["ld_vcf_skipped"] = {k: int(v) for k, v in panel.counts.get("skipped", {}).items()}
            n_ref = panel.n_people
        else:
            region_set = ld_format().open(ld, region=region, maf_min=ld_maf_min)
            regions = region_set.regions
            tables = []
            status("reading region tables", total=len(regions))
            for i in range(len(regions)):
                tables.append(region_set.read_table(i))
                if bar is not None:
                    bar.advance(task)
            ref, region_rows, bad = _ukbb_reference(tables)
            inputs = list(region_set.inputs)
            if ld_maf_min:
                raise UserError("option --ld-maf-min: a UKBB/PolyFun LD reference has no allele frequencies", path=ld)
            excluded = {"duplicate_in_ld": bad}
            if lrld is not None:
                from ..io.ld_filters import in_regions

                excluded["long_range_ld"] = in_regions(ref["chrom"], ref["bp"], lrld) & ~bad
            ref_filters = _reference_filters(ref, region, acgt_mask)
            excluded.update(ref_filters["excluded"])
            h = harmonise(ss, ref, ref_excluded=excluded)
            h.counts["ld_duplicates"] += int(bad.sum())
            extra = {"ld_regions": len(regions), **ref_filters["counts"]}
            n_ref = 0
        # a declared size wins over the panel's own count (a panel standing for a larger
        # sample, e.g. LD from the GWAS genotypes given as a subset): recorded as such
        n_ref_source = "declared" if ld_people is not None else ("panel" if n_ref else "unknown")
        if ld_people is not None:
            n_ref = int(ld_people)

        counts = h.counts
        mismatch = None
        if chain is None:
            from ..io.liftover import detect_build_mismatch

            mismatch = detect_build_mismatch(ss, ref)
            if mismatch and counts["matched"] == 0:
                raise UserError(mismatch, path=sumstats)
            if mismatch:
                print(f"varfx: warning: {sumstats}: {mismatch}", file=sys.stderr)
        if counts["matched"] == 0:
            d = ", ".join(f"{k} {v}" for k, v in {**filtered, **counts["dropped"]}.items() if v)
            raise UserError(
                f"no variant matched the LD reference {ld} (by {h.match_by}; {ss_read.n_variants} read: "
                f"{d or 'none'}): check the chromosome names, positions (genome build) and alleles",
                path=sumstats,
            )

        M = counts["matched"]
        si, rj, flip = h.ss_index, h.ref_index, h.flip
        z = np.where(flip, -ss["z"][si], ss["z"][si])
        nn = ss["n"][si]
        if genotypes:
            freq = panel_freq[rj]
        else:
            f = ss["freq"][si]
            freq = np.where(flip, 1.0 - f, f)
        variants = {
            "snp": ref["snp"][rj],
            "chrom": ref["chrom"][rj].astype(np.int16),
            "bp": ref["bp"][rj].astype(np.int64),
            "a1": ref["a1"][rj],
            "a2": ref["a2"][rj],
            "z": z.astype(np.float64),
            "n": nn.astype(np.float64),
            "freq": freq.astype(np.float64),
        }
        median_n = float(np.median(nn))

        summary = {
            "dataset": str(out),
            "sumstats": str(sumstats),
            "sumstats_format": ss.format,
            "sumstats_delimiter": ss.delimiter,
            "sumstats_columns": dict(ss.columns),
            "n_source": ss.n_source,
            "ld": str(ld),
            "ld_kind": kind,
            "build": build,
            "match_by": h.match_by,
            "read": ss_read.n_variants,
            "filters": filters,
            "filtered": {k: int(v) for k, v in filtered.items()},
            "after_filters": counts["read"],
            "ld_variants": counts["ld_variants"],
            **extra,
            "ld_duplicates": counts["ld_duplicates"],
            "matched": M,
            "flipped": counts["flipped"],
            "strand_flipped": counts["strand_flipped"],
            "ambiguous_resolved": counts["ambiguous_resolved"],
            "dropped": {k: int(v) for k, v in counts["dropped"].items()},
            "N": median_n,
            "n_ref": int(n_ref),
            "n_ref_source": n_ref_source,
        }
        if lift_counts is not None:
            summary["liftover"] = lift_counts
        if mismatch:
            summary["warning"] = mismatch

        status("hashing inputs")
        records = [_input_record("sumstats", sumstats)] + [_input_record(r, p) for r, p in inputs]
        if chain is not None:
            records.append(_input_record("liftover_chain", liftover))
        if exclude_lrld is not None:
            records.append(_input_record("long_range_ld", exclude_lrld))
        provenance = {
            "stage": "ingest",
            "inputs": records,
            "parameters": {"n": n, "build": build, "match_by": h.match_by, "ld_kind": kind,
                           "columns": dict(columns or {}), "sumstats_format": sumstats_format,
                           "info_min": float(info_min), "maf_min": float(maf_min),
                           "keep_multi_allelic": bool(keep_multi_allelic),
                           "liftover_move": bool(liftover_move), "ld_maf_min": float(ld_maf_min),
                           "ld_region": ld_region, "feature_window": int(feature_window),
                           "ambiguous_maf_max": float(ambiguous_maf_max),
                           "ld_people": None if ld_people is None else int(ld_people)},
            "counts": summary,
        }

        def write(f5, upto=None):
            """Write the dataset into the open ``f5``: every variant, or (the dry run) the
            first ``upto`` of them."""
            variants_w = variants if upto is None else {k: v[:upto] for k, v in variants.items()}
            rows = rj if upto is None else rj[:upto]
            f5.attrs["format"] = DATASET_FORMAT
            f5.attrs["format_version"] = DATASET_VERSION
            f5.attrs["varfx_version"] = __version__
            f5.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            f5.attrs["provenance"] = json.dumps(provenance)
            f5.attrs["N"] = median_n
            f5.attrs["ld_kind"] = kind  # the format read; /ld/kind says how it is stored
            f5.attrs["n_ref"] = int(n_ref)
            f5.attrs["build"] = str(build)
            _write_variants(f5, variants_w)
            # the content hash the window store is linked by, computed once here
            # (read back from the file: the bytes every later check hashes)
            record_fingerprint(f5)
            g = f5.create_group("ld")
            # genotype panels of every format are stored as PLINK-style dosages, region
            # formats as UKBB-style triangles: io/ld.open_ld reads these two
            g.attrs["kind"] = "plink" if genotypes else "ukbb"
            if genotypes:
                _write_plink_ld(g, panel, rows, status, bar, task)
            else:
                used = _write_ukbb_ld(g, region_set, tables, region_rows, ref, rows, status, bar, task)
                summary["ld_regions_used"] = used
            if feature_entries:
                from ..features.store import write_features

                def feature_progress(message, done, total):
                    if bar is not None:
                        bar.update(task, status=message, total=total, completed=done)

                summary["features"] = write_features(
                    f5.create_group("features"), variants_w["chrom"], variants_w["bp"], feature_entries,
                    window=int(feature_window), progress=feature_progress, dtype=feature_dtype,
                    variants={k: variants_w[k] for k in ("snp", "a1", "a2", "freq")})
                f5.attrs["provenance"] = json.dumps(provenance | {"features": summary["features"]},
                                                    default=str)
            if fasta is not None:
                # what a prior that reads DNA (seqcnn) reads at fit and score time
                from ..store.variants import write_fasta_attrs

                write_fasta_attrs(f5, fasta)

        if dry_run:
            return _dry_run_plan(write, summary, records, out=out, M=M, t_start=t_start,
                                 n_people=panel.n_people if genotypes else None, features=bool(feature_entries))
        with atomic_dir(out) as tmp:
            with guarded_h5(tmp / DATASET_FILE, out, "the dataset") as f5:
                write(f5)
            status("done")
    return summary


#: variants the dry run writes (into memory) to time and size the writing
DRY_RUN_VARIANTS = 4096


def _dry_run_plan(write, summary: dict, records: list, *, out: Path, M: int, t_start: float, n_people,
                  features: bool) -> dict:
    """ingest's dry run after the reading and matching (done, timed): the first
    :data:`DRY_RUN_VARIANTS` variants written into an in-memory HDF5 file, timed and
    sized, and both scaled to the ``M`` matched variants."""
    import time

    from ..store import dry_run as dr

    dr.check_writable(out / DATASET_FILE, "the dataset")
    measured = time.perf_counter() - t_start
    upto = min(M, DRY_RUN_VARIANTS)

    def fill(f5):
        write(f5, upto)
        return tuple(f5["features"]["window"].shape) if "features" in f5 and "window" in f5["features"] else None

    tracks, sample_bytes, t_sample = dr.write_in_memory(fill)
    scale = M / upto
    exact = upto == M
    counts = dict(summary)  # with what the sample's write added (ld_regions_used, features)
    for key in ("ld_regions_used", "features"):
        # the sample's, not the run's, unless the sample was every variant
        if not exact:
            counts.pop(key, None)
    old = out / DATASET_FILE
    replaces = old.is_file()
    # the run replaces the whole directory (atomic_dir): its other files go with it
    existing = sorted(p for p in out.rglob("*") if p.is_file()) if out.is_dir() else []
    old_bytes = sum(dr.file_bytes(p) or 0 for p in existing)
    disk = float(sample_bytes * scale)
    basis = [f"ingest --dry-run: read, filtered and matched as the run does ({measured:.3g} s, measured); "
             f"the writing timed and sized on {upto:,} of the {M:,} matched variants written into memory "
             f"({t_sample:.3g} s, {sample_bytes:,} bytes) and scaled by {scale:.4g}",
             "peak memory: this process's peak while it read and matched (the writing holds one block of "
             "variants at a time" + (", plus the per-base tracks while they are normalised" if features else "")
             + ")"]
    reads = [{"role": r["role"], "path": r["path"], "bytes": r["bytes"]} for r in records]
    memory = dr.peak_rss_bytes()
    if tracks is not None and memory is not None:
        # write_features keeps the per-base tracks (float32) in memory between its two
        # passes when they fit in its budget (1 GiB), else reads them again
        memory += min(M * tracks[1] * tracks[2] * 4, 1 << 30)
    return dr.plan("ingest", reads=reads,
                   writes=[{"path": str(old), "bytes": disk, "replaces": replaces}],
                   counts=counts, counts_exact=True, sample={"variants": upto, "seconds": t_sample,
                                                              "bytes": sample_bytes},
                   seconds_measured=measured, seconds_estimated=t_sample * scale, memory_bytes=memory,
                   basis=basis,
                   # atomic_dir builds the new dataset next to the old one, then swaps them
                   disk_peak_bytes=disk + old_bytes,
                   dataset=str(out), n_people=n_people,
                   removes=[str(p) for p in existing if p != old])


def _reference_filters(ref: dict, region, acgt_mask) -> dict:
    """LD reference variants ingest cannot use, as ``harmonise`` exclusions and counts.

    - ``non_acgt_in_ld``: an allele that is not A/C/G/T letters (a PLINK indel ``I``/``D``
      or ``-``, a missing allele ``0`` of a monomorphic variant): Z cannot be oriented to
      it, so the variant is dropped (``ld_non_acgt`` counts the panel's);
    - ``outside_ld_region``: outside ``--ld-region`` (a VCF panel is only read inside it;
      a PLINK panel or UKBB regions are read whole and restricted here, so the option
      means the same for every kind; ``ld_outside_region`` counts them).
    """
    excluded, counts = {}, {}
    non_acgt = ~acgt_mask(ref["a1"], ref["a2"])
    counts["ld_non_acgt"] = int(non_acgt.sum())
    if non_acgt.any():
        excluded["non_acgt_in_ld"] = non_acgt
    if region is not None:
        outside = ~region.contains(ref["chrom"], ref["bp"]) & ~non_acgt
        counts["ld_outside_region"] = int(outside.sum())
        excluded["outside_ld_region"] = outside
    return {"excluded": excluded, "counts": counts}


def _write_variants(f5, variants: dict) -> None:
    import h5py

    g = f5.create_group("variants")
    M = len(variants["z"])
    chunks = (min(M, 65536),)
    sdt = h5py.string_dtype("utf-8")
    for key in ("snp", "a1", "a2"):
        g.create_dataset(key, data=np.asarray(variants[key], dtype=object), dtype=sdt, chunks=chunks, compression="gzip")
    for key in ("chrom", "bp", "z", "n", "freq"):
        g.create_dataset(key, data=variants[key], chunks=chunks, compression="gzip")


def _write_plink_ld(g, panel, rj, status, bar, task) -> None:
    M = len(rj)
    status("writing genotypes", total=M)
    ds = g.create_dataset(
        "genotypes", shape=(M, panel.n_people), dtype=np.int8,
        chunks=(min(M, 1024), panel.n_people), compression="gzip",
    )
    g.attrs["n_people"] = panel.n_people
    step = 8192
    for s in range(0, M, step):
        ds[s : s + step] = panel.genotypes(rj[s : s + step])
        _guard(g)
        if bar is not None:
            bar.advance(task, min(step, M - s))


def _ukbb_reference(tables):
    """The union of the region tables as one reference (one row per distinct variant).

    A variant is identified by chromosome, position and unordered allele pair; its
    orientation is taken from the first region listing it.  Variants listed twice in one
    region are marked bad (dropped as ``duplicate_in_ld``).  Returns the reference,
    for each region its rows' reference indices, and the bad mask.
    """
    keys: dict = {}
    cols = {k: [] for k in ("snp", "chrom", "bp", "a1", "a2")}
    region_rows = []
    bad_keys = set()
    for t in tables:
        a1, a2 = t["a1"].tolist(), t["a2"].tolist()
        kk = [(c, b) + ((x, y) if x <= y else (y, x)) for c, b, x, y in zip(t["chrom"].tolist(), t["bp"].tolist(), a1, a2)]
        seen = set()
        rows = np.empty(len(kk), dtype=np.int64)
        for i, k in enumerate(kk):
            if k in seen:
                bad_keys.add(k)
            seen.add(k)
            j = keys.get(k)
            if j is None:
                j = keys[k] = len(cols["snp"])
                cols["snp"].append(t["snp"][i])
                cols["chrom"].append(k[0])
                cols["bp"].append(k[1])
                cols["a1"].append(a1[i])
                cols["a2"].append(a2[i])
            rows[i] = j
        region_rows.append(rows)
    ref = {
        "snp": np.array(cols["snp"], dtype=str),
        "chrom": np.array(cols["chrom"], dtype=np.int64),
        "bp": np.array(cols["bp"], dtype=np.int64),
        "a1": np.array(cols["a1"], dtype=str),
        "a2": np.array(cols["a2"], dtype=str),
    }
    bad = np.zeros(len(ref["snp"]), dtype=bool)
    for k in bad_keys:
        bad[keys[k]] = True
    return ref, region_rows, bad


def _write_ukbb_ld(g, region_set, tables, region_rows, ref, rj, status, bar, task) -> int:
    from ..io.ukbb import region_correlation

    regions = region_set.regions

    n_ref_rows = len(ref["snp"])
    dataset_of_ref = np.full(n_ref_rows, -1, dtype=np.int64)
    dataset_of_ref[rj] = np.arange(len(rj))
    rg = g.create_group("regions")
    status("writing LD regions", total=len(regions))
    used = 0
    for i_reg, (reg, t, rows) in enumerate(zip(regions, tables, region_rows)):
        ds_idx = dataset_of_ref[rows]
        local = np.flatnonzero(ds_idx >= 0)
        if local.size:
            L = region_set.triangle(i_reg, len(rows))
            order = np.argsort(ds_idx[local], kind="stable")
            local = local[order]
            idx = ds_idx[local]
            # +1 where the region lists allele1 as the dataset's a1, -1 where swapped
            sign = np.where(t["a1"][local] == ref["a1"][rows[local]], 1.0, -1.0)
            low = region_correlation(L, local, sign)
            if np.any(np.abs(low.data) > 1.0 + 1e-3):
                from ..errors import UserError

                raise UserError(
                    "correlation above 1 in absolute value after R = L + L^T: expected one triangle of R "
                    "with 0.5 on the diagonal",
                    path=getattr(reg, "npz", reg.name),
                )
            grp = rg.create_group(reg.name)
            grp.attrs["chrom"] = reg.chrom
            grp.attrs["start"] = reg.start
            grp.attrs["end"] = reg.end
            grp.create_dataset("idx", data=idx.astype(np.int64))
            comp = dict(compression="gzip") if low.nnz > 0 else {}
            grp.create_dataset("data", data=low.data.astype(np.float32), **comp)
            grp.create_dataset("indices", data=low.indices.astype(np.int32), **comp)
            grp.create_dataset("indptr", data=low.indptr.astype(np.int64))
            used += 1
            _guard(g)
        if bar is not None:
            bar.advance(task)
    return used


def print_ingest_summary(summary: dict) -> None:
    """The ingest summary as a rich table on stderr: inputs, the sumstats filters, the
    harmonisation counts (the same numbers as ``--json``, which has the full paths)."""
    from rich.table import Table

    from ..ui import console

    def num(v):
        return f"{v:,}" if isinstance(v, int) else (f"{v:,.6g}" if isinstance(v, float) else str(v))

    t = Table(title="varfx ingest", show_header=False, title_justify="left")
    t.add_column("what", style="bold", no_wrap=True)
    t.add_column("value", justify="right", no_wrap=True)
    t.add_column("note", style="dim")
    cols = summary.get("sumstats_columns", {})
    n_from = "--n" if summary.get("n_source") == "option" else cols.get("n", "?")
    t.add_row("sumstats", Path(summary["sumstats"]).name,
              f"{summary['sumstats_format']}, {summary.get('sumstats_delimiter', '')}; "
              f"Z = {cols.get('z', '?')}; N from {n_from}")
    ld_note = f"{summary['n_ref']} people" if summary.get("n_ref") else ""
    if summary.get("n_ref_source") == "declared":
        ld_note += " (--ld-people)"
    if "ld_regions" in summary:
        ld_note = f"{summary['ld_regions']} regions, {summary.get('ld_regions_used', 0)} used"
    t.add_row("LD reference", Path(summary["ld"]).name, f"{summary['ld_kind']}; {ld_note}".rstrip("; "))
    t.add_row("build, match by", f"{summary['build']}, {summary['match_by']}", "")
    t.add_row("dataset", Path(summary["dataset"]).name, "")
    t.add_section()
    t.add_row("read", num(summary["read"]), "")
    f = summary.get("filters", {})
    notes = {
        "non_autosomal": ("not chr1-22", ""),
        "low_info": (f"INFO < {f.get('info_min')}",
                     f"column {f['info_column']}" if f.get("info_column") else "no INFO column"),
        "low_maf": (f"MAF < {f.get('maf_min')}",
                    f"column {f['freq_column']}" if f.get("freq_column") else "no frequency column"),
        "multi_allelic": ("multi-allelic", "kept" if f.get("multi_allelic") == "keep" else ""),
    }
    for k, v in summary.get("filtered", {}).items():
        label, note = notes.get(k, (k, ""))
        t.add_row(f"  filtered: {label}", num(v), note)
    t.add_row("after filters", num(summary.get("after_filters", summary["read"])), "")
    t.add_section()
    t.add_row("matched", num(summary["matched"]),
              f"of {summary['ld_variants']:,} LD variants ({summary.get('ld_duplicates', 0):,} duplicated)")
    if summary.get("ld_non_acgt"):
        t.add_row("  LD variants not A/C/G/T", num(summary["ld_non_acgt"]), "indels or allele 0: not used")
    if "ld_outside_region" in summary:
        t.add_row("  LD variants outside --ld-region", num(summary["ld_outside_region"]), "not used")
    t.add_row("  flipped", num(summary["flipped"]), "alleles swapped: Z negated")
    t.add_row("  strand flipped", num(summary["strand_flipped"]), "alleles complemented")
    for k, v in summary["dropped"].items():
        t.add_row(f"  dropped: {k}", num(v), "")
    t.add_section()
    t.add_row("median N", num(summary["N"]), "")
    console().print(t)
