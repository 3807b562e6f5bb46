"""``varfx bags``: the weakly labelled bags of multiple-instance fine-mapping.

Reads only ``DATASET/dataset.h5`` (the variants and the LD that ingest stored, through
:func:`varfx.io.ld.open_ld`) and writes ``DATASET/bags.h5`` (:mod:`varfx.store.bags`).

- Positives, by default, by greedy LD clumping as PLINK's ``--clump`` does it: the most
  significant significant variant not yet clumped is a lead; its block is every
  unclumped significant variant within ``clump_kb`` of it with ``r^2 >= clump_r2`` to it
  (the lead included); repeat.  Or pre-defined blocks from a TSV (``--blocks``).
- Negatives: common variants with no association, far from every hit.
- Several studies (``--add-study``): the bags of other datasets built the same way from
  their own stores, mapped onto this dataset's variants by chromosome, position and
  alleles.

p-values are never formed as such: ``log p = log 2 + log Phi(-|z|)`` stays finite for
any finite z (p itself underflows to 0 at |z| > 38, where every hit would tie), and the
ranking is by |z| (the same order as p).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError

#: The columns of a --blocks file (MIFM's CAUSALdb input); ``signal`` is optional.
BLOCK_COLUMNS = ("chr", "bp", "rsid", "ea", "nea", "p", "block_id")


@dataclass
class BagOptions:
    p_threshold: float = 5e-8
    clump_kb: float = 500.0
    clump_r2: float = 0.1
    min_bag_size: int = 10
    max_bag_size: int = 128
    neg_maf_min: float = 0.05
    neg_p_min: float = 0.1
    neg_exclude_kb: float = 10.0
    blocks: str | None = None
    drop_unknown: bool = False

    def check(self) -> None:
        """The same ranges as the command line's click types (for callers of the API)."""
        bad = None
        if not (0 < self.p_threshold < 1):
            bad = ("p_threshold", self.p_threshold, "in (0, 1)")
        elif not (0 <= self.clump_r2 <= 1):
            bad = ("clump_r2", self.clump_r2, "in [0, 1]")
        elif not (self.clump_kb >= 0 and math.isfinite(self.clump_kb)):
            bad = ("clump_kb", self.clump_kb, ">= 0")
        elif not (self.neg_exclude_kb >= 0 and math.isfinite(self.neg_exclude_kb)):
            bad = ("neg_exclude_kb", self.neg_exclude_kb, ">= 0")
        elif not self.min_bag_size >= 1:
            bad = ("min_bag_size", self.min_bag_size, ">= 1")
        elif not self.max_bag_size >= self.min_bag_size:
            bad = ("max_bag_size", self.max_bag_size, f">= min_bag_size ({self.min_bag_size})")
        elif not (0 <= self.neg_maf_min <= 0.5):
            bad = ("neg_maf_min", self.neg_maf_min, "in [0, 0.5]")
        elif not (0 <= self.neg_p_min < 1):
            bad = ("neg_p_min", self.neg_p_min, "in [0, 1)")
        if bad:
            name, value, want = bad
            raise UserError(f"option --{name.replace('_', '-')}: expected a value {want}, got {value!r}")


def two_sided_log_p(z) -> np.ndarray:
    """``log p`` of a two-sided normal test, finite for every finite z (no underflow)."""
    from scipy.special import log_ndtr

    z = np.abs(np.asarray(z, dtype=np.float64))
    return np.minimum(np.log(2.0) + log_ndtr(-z), 0.0)


def _p_text(logp: float) -> str:
    """A p-value for messages, also below the smallest double (``1e-400``)."""
    if logp > -700:
        return f"{math.exp(logp):.3g}"
    e = logp / math.log(10)
    k = math.floor(e)
    return f"{10 ** (e - k):.3g}e{k}"


# ------------------------------------------------------------------------------ variants


@dataclass
class Variants:
    """The variant arrays of one dataset.h5 that the bags need."""

    path: Path
    snp: np.ndarray  # str
    chrom: np.ndarray  # int64
    bp: np.ndarray  # int64
    a1: np.ndarray  # str, upper case
    a2: np.ndarray
    z: np.ndarray
    freq: np.ndarray  # NaN: unknown
    logp: np.ndarray = field(init=False)

    def __post_init__(self):
        self.logp = two_sided_log_p(self.z)

    @property
    def n(self) -> int:
        return len(self.bp)

    def allele_key(self, i) -> tuple:
        """(chrom, bp, alleles in either orientation): how variants of two datasets or
        of a --blocks file are matched."""
        return (int(self.chrom[i]), int(self.bp[i])) + tuple(sorted((self.a1[i], self.a2[i])))

    def key_index(self) -> dict:
        out: dict = {}
        for i in range(self.n):
            out.setdefault(self.allele_key(i), i)  # duplicates (multi-allelic kept): the first
        return out


def read_variants(h5) -> Variants:
    var = h5["variants"]

    def text(key):
        return np.array([s.upper() if key != "snp" else s for s in var[key].asstr()[:]], dtype=object)

    return Variants(path=Path(h5.filename), snp=text("snp"), chrom=var["chrom"][:].astype(np.int64),
                    bp=var["bp"][:].astype(np.int64), a1=text("a1"), a2=text("a2"),
                    z=var["z"][:].astype(np.float64), freq=var["freq"][:].astype(np.float64))


# ------------------------------------------------------------------------------ clumping


def r_to_lead(ld, lead: int, others: np.ndarray, chrom: int, lead_bp: int):
    """Correlations of ``others`` (sorted dataset indices) with ``lead``, and a mask of
    those without any LD information with it (outside the UKBB region chosen for the
    lead: they get r = 0)."""
    others = np.asarray(others, dtype=np.int64)
    if others.size == 0:
        return np.zeros(0), np.zeros(0, bool)
    idx = np.union1d(others, [lead])
    pos_lead = int(np.searchsorted(idx, lead))
    pos = np.searchsorted(idx, others)
    if hasattr(ld, "standardized"):  # genotypes: every pair has a correlation
        # one row of R (len(idx) dot products) instead of the whole matrix
        x = ld.standardized(idx)
        r = x[pos] @ x[pos_lead] / ld.n_people
        return r, np.zeros(len(others), bool)
    R = ld.correlation(idx, chrom, lead_bp)
    if not hasattr(ld, "pick_region"):
        return R[pos, pos_lead], np.zeros(len(others), bool)
    name = ld.pick_region(chrom, lead_bp)
    if name is None:
        return np.zeros(len(others)), np.ones(len(others), bool)
    inside = np.isin(idx, ld.region_index(name))
    outside = ~inside[pos] | (not inside[pos_lead])
    return R[pos, pos_lead], outside


def clump(v: Variants, ld, opts: BagOptions, advance=None):
    """Greedy clumping of the significant variants; returns (blocks, n outside the LD
    region).  Each block is an int64 array of dataset indices, lead first, the rest most
    significant first (ties: lower index first)."""
    log_t = math.log(opts.p_threshold)
    sig = np.flatnonzero(v.logp < log_t)
    # most significant first: |z| descending (p ties at underflow never arise)
    sig = sig[np.lexsort((sig, -np.abs(v.z[sig])))]
    rank = np.empty(v.n, dtype=np.int64)
    rank[sig] = np.arange(len(sig))
    free = np.zeros(v.n, dtype=bool)
    free[sig] = True
    window = opts.clump_kb * 1000.0
    # per chromosome, the significant variants by position: each lead looks only at its
    # window (a binary search), not at every significant variant of the genome
    by_chrom = {}
    for c in np.unique(v.chrom[sig]):
        on = sig[v.chrom[sig] == c]
        on = on[np.argsort(v.bp[on], kind="stable")]
        by_chrom[int(c)] = (on, v.bp[on])
    blocks, outside_seen = [], np.zeros(v.n, dtype=bool)
    for lead in sig:
        if not free[lead]:
            continue
        c = int(v.chrom[lead])
        on, on_bp = by_chrom[c]
        lo = np.searchsorted(on_bp, v.bp[lead] - window, side="left")
        hi = np.searchsorted(on_bp, v.bp[lead] + window, side="right")
        pool = on[lo:hi]
        others = np.sort(pool[free[pool] & (pool != lead)])
        r, outside = r_to_lead(ld, int(lead), others, c, int(v.bp[lead]))
        outside_seen[others[outside]] = True
        members = others[(r * r >= opts.clump_r2) & ~outside]
        members = members[np.argsort(rank[members], kind="stable")]
        block = np.concatenate([[lead], members]).astype(np.int64)
        free[block] = False
        blocks.append(block)
        if advance is not None:
            advance(len(block))
    return blocks, int(outside_seen.sum())


# ------------------------------------------------------------------------------ --blocks


@dataclass
class RawBag:
    """A bag in its own dataset's indices, before it is mapped onto the training dataset."""

    name: str
    variants: np.ndarray  # most significant first
    signal: str = ""


def _column_index(header: list[str], path) -> dict:
    names = [h.strip().lower() for h in header]
    if names and names[0].startswith("#"):
        names[0] = names[0].lstrip("#").strip()
    missing = [c for c in BLOCK_COLUMNS if c not in names]
    if missing:
        raise UserError(f"missing column{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)} "
                        f"(a --blocks file has the columns {' '.join(BLOCK_COLUMNS)} [signal]; the header has "
                        f"{' '.join(names)})", path=path, line=1)
    cols = {c: names.index(c) for c in BLOCK_COLUMNS}
    if "signal" in names:
        cols["signal"] = names.index("signal")
    return cols


def read_blocks(path, v: Variants, opts: BagOptions):
    """The bags of a --blocks file matched onto ``v``: (bags, matched indices of every
    row, counts).  Bags are keyed by (block_id, signal)."""
    from ..genome import chrom_code, is_missing, open_text

    path = Path(path)
    keys = v.key_index()
    by_rsid: dict = {}
    for i, s in enumerate(v.snp):
        by_rsid.setdefault(s, i)
    groups: dict = {}  # (block_id, signal) -> {variant: (p, line)}
    block_chrom: dict = {}  # block_id -> (chrom, line)
    counts = {"rows": 0, "matched_by_position": 0, "matched_by_rsid": 0, "unknown_rows": 0, "duplicate_rows": 0}
    with open_text(path, "the --blocks file") as fh:
        header = None
        for lineno, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t") if "\t" in line else line.split()
            if header is None:
                header = _column_index(fields, path)
                width = max(header.values()) + 1
                continue
            counts["rows"] += 1
            if len(fields) < width:
                raise UserError(f"{len(fields)} fields, the header has {width}", path=path, line=lineno)

            def get(col):
                return fields[header[col]].strip()

            chrom = chrom_code(get("chr"))
            if chrom < 1:
                raise UserError(f"expected a chromosome (1-22, with or without 'chr'), got {get('chr')!r}",
                                path=path, line=lineno, column="chr")
            try:
                bp = int(get("bp"))
            except ValueError:
                raise UserError(f"expected an integer position, got {get('bp')!r}", path=path, line=lineno,
                                column="bp") from None
            try:
                p = float(get("p"))
            except ValueError:
                raise UserError(f"expected a p-value, got {get('p')!r}", path=path, line=lineno, column="p") from None
            if not (0 <= p <= 1):  # NaN fails too
                raise UserError(f"expected a p-value in [0, 1], got {get('p')!r}", path=path, line=lineno, column="p")
            block = get("block_id")
            if is_missing(block):
                raise UserError("empty block id", path=path, line=lineno, column="block_id")
            signal = get("signal") if "signal" in header else ""
            if block in block_chrom and block_chrom[block][0] != chrom:
                raise UserError(f"block {block!r} spans two chromosomes ({block_chrom[block][0]} from line "
                                f"{block_chrom[block][1]}, {chrom} here): a block is one region of one chromosome",
                                path=path, line=lineno)
            block_chrom.setdefault(block, (chrom, lineno))
            key = (chrom, bp) + tuple(sorted((get("ea").upper(), get("nea").upper())))
            idx = keys.get(key)
            if idx is not None:
                counts["matched_by_position"] += 1
            else:
                idx = by_rsid.get(get("rsid"))
                if idx is None or is_missing(get("rsid")):
                    if not opts.drop_unknown:
                        raise UserError(f"variant {get('rsid')!r} (chr{chrom}:{bp} {get('ea')}/{get('nea')}) is not "
                                        f"in the dataset {v.path} (matched by chromosome, position and alleles in "
                                        "either orientation, then by rsid); --drop-unknown drops such rows",
                                        path=path, line=lineno)
                    counts["unknown_rows"] += 1
                    continue
                if int(v.chrom[idx]) != chrom:
                    raise UserError(f"block {block!r}: rsid {get('rsid')!r} is on chromosome {int(v.chrom[idx])} in "
                                    f"the dataset, {chrom} in this file", path=path, line=lineno)
                counts["matched_by_rsid"] += 1
            members = groups.setdefault((block, signal), {})
            if idx in members:
                counts["duplicate_rows"] += 1
                members[idx] = min(members[idx], p)
            else:
                members[idx] = p
    if header is None:
        raise UserError(f"empty file (expected a header line: {' '.join(BLOCK_COLUMNS)} [signal])", path=path)
    if counts["rows"] == 0:
        raise UserError("no rows after the header", path=path)
    bags, matched = [], []
    for (block, signal), members in groups.items():
        idx = np.fromiter(members.keys(), dtype=np.int64)
        p = np.fromiter(members.values(), dtype=np.float64)
        # the file's p first; ties (p = 0 from an underflow upstream) by the dataset's |z|
        order = np.lexsort((idx, -np.abs(v.z[idx]), p))
        bags.append(RawBag(name=block, variants=idx[order], signal=signal))
        matched.append(idx)
    matched = np.unique(np.concatenate(matched)) if matched else np.zeros(0, np.int64)
    return bags, matched, counts


# ------------------------------------------------------------------------------ negatives


def _near(chrom, bp, ref_chrom, ref_bp, distance: float) -> np.ndarray:
    """Mask of (chrom, bp) within ``distance`` bp (strictly less) of any reference position."""
    out = np.zeros(len(bp), dtype=bool)
    for c in np.unique(ref_chrom):
        ref = np.sort(ref_bp[ref_chrom == c])
        sel = np.flatnonzero(chrom == c)
        if not len(sel):
            continue
        x = bp[sel]
        j = np.searchsorted(ref, x)
        left = np.abs(x - ref[np.maximum(j - 1, 0)])
        right = np.abs(ref[np.minimum(j, len(ref) - 1)] - x)
        out[sel] = np.minimum(left, right) < distance
    return out


def negative_pool(v: Variants, hits: np.ndarray, opts: BagOptions):
    """Dataset indices of the negatives of ``v`` (sorted) and their counts.

    ``hits``: the indices negatives must keep away from (significant variants and
    positive bag members)."""
    counts = {}
    cand = v.logp > math.log(opts.neg_p_min) if opts.neg_p_min > 0 else np.ones(v.n, bool)
    counts["p_above_neg_p_min"] = int(cand.sum())
    freq_known = ~np.isnan(v.freq)
    if not freq_known.any():
        counts["maf_filter"] = "skipped: the dataset has no allele frequencies"
    else:
        maf = np.minimum(v.freq, 1.0 - v.freq)
        common = freq_known & (maf >= opts.neg_maf_min)
        counts["maf_filter"] = "applied"
        counts["below_neg_maf_min"] = int((cand & freq_known & ~common).sum())
        counts["no_frequency"] = int((cand & ~freq_known).sum())
        cand &= common
    hits = np.asarray(hits, dtype=np.int64)
    if len(hits):
        near = _near(v.chrom, v.bp, v.chrom[hits], v.bp[hits], opts.neg_exclude_kb * 1000.0)
        near[hits] = True  # a hit is never its own negative, even at --neg-exclude-kb 0
        counts["near_a_hit"] = int((cand & near).sum())
        cand &= ~near
    return np.flatnonzero(cand).astype(np.int64), counts


# ------------------------------------------------------------------------------ one study


@dataclass
class Study:
    name: str
    dataset: Path
    variants: Variants
    fingerprint: dict | None
    bags: list  # RawBag, sizes within [min, max]
    negatives: np.ndarray
    hits: np.ndarray  # significant variants and every variant of a positive block
    counts: dict


def _size_filter(raw: list, opts: BagOptions, counts: dict) -> list:
    kept = []
    counts["below_min_size"] = 0
    counts["truncated_to_max_size"] = 0
    counts["members_truncated"] = 0
    for b in raw:
        if len(b.variants) < opts.min_bag_size:
            counts["below_min_size"] += 1
            continue
        if len(b.variants) > opts.max_bag_size:
            counts["truncated_to_max_size"] += 1
            counts["members_truncated"] += len(b.variants) - opts.max_bag_size
            b = RawBag(name=b.name, variants=b.variants[:opts.max_bag_size], signal=b.signal)
        kept.append(b)
    return kept


def build_study(dataset, name: str, opts: BagOptions, bar=None, use_blocks: bool = True) -> Study:
    """The bags and negatives of one dataset from its own dataset.h5."""
    from ..io.ld import open_ld
    from ..store.dataset import dataset_file, open_dataset, stored_fingerprint

    dataset = Path(dataset)
    path = dataset_file(dataset)
    with open_dataset(dataset) as h5:
        v = read_variants(h5)
        fp = stored_fingerprint(h5)
        counts: dict = {"variants": v.n}
        log_t = math.log(opts.p_threshold)
        sig = np.flatnonzero(v.logp < log_t)
        counts["significant"] = int(len(sig))
        if opts.blocks and use_blocks:
            raw, matched, block_counts = read_blocks(opts.blocks, v, opts)
            counts.update(block_counts)
            counts["blocks"] = len(raw)
            hits = np.union1d(sig, matched)
        else:
            if not len(sig):
                best = int(np.argmin(v.logp)) if v.n else None
                smallest = f"the smallest p is {_p_text(v.logp[best])} (|z| = {abs(v.z[best]):.3g}, " \
                           f"{v.snp[best]})" if best is not None else "the dataset has no variants"
                raise UserError(f"no variant with p < {opts.p_threshold:g} (--p-threshold): {smallest}; nothing to "
                                "clump into positive bags (raise --p-threshold, or give --blocks)", path=path)
            task = None
            if bar is not None:
                task = bar.add_task(f"clumping {name}", total=len(sig), status="")

            def advance(k):
                if task is not None:
                    bar.update(task, advance=k)

            ld = open_ld(h5)
            blocks, outside = clump(v, ld, opts, advance)
            counts["blocks"] = len(blocks)
            counts["outside_ld_region"] = outside
            raw = [RawBag(name=str(v.snp[b[0]]), variants=b) for b in blocks]
            hits = sig
    bags = _size_filter(raw, opts, counts)
    negatives, neg_counts = negative_pool(v, hits, opts)
    counts["negative_filters"] = neg_counts
    return Study(name=name, dataset=dataset, variants=v, fingerprint=fp, bags=bags,
                 negatives=negatives, hits=hits, counts=counts)


def _unique_names(paths) -> list[str]:
    """Each dataset's directory name, with ``-2``, ``-3``... appended where taken."""
    names: list[str] = []
    for p in paths:
        base = Path(p).resolve().name or "dataset"
        name, k = base, 1
        while name in names:
            k += 1
            name = f"{base}-{k}"
        names.append(name)
    return names


def _quantiles(sizes) -> dict:
    if not len(sizes):
        return {}
    q = np.quantile(np.asarray(sizes, dtype=np.float64), [0, 0.25, 0.5, 0.75, 1.0])
    return {"min": int(q[0]), "q25": float(q[1]), "median": float(q[2]), "q75": float(q[3]), "max": int(q[4])}


# ------------------------------------------------------------------------------ the stage


def run_bags(dataset, *, add_study=(), progress: bool = True, dry_run: bool = False, **options) -> dict:
    """Build and write ``DATASET/bags.h5``; returns the summary (also stored in it).

    ``dry_run``: build the bags as the run does (the clumping is the whole cost of the
    stage, and what gives the counts and the errors) and size bags.h5 in memory instead
    of writing it; returns the plan (:func:`varfx.store.dry_run.plan`)."""
    import time

    t_start = time.perf_counter()
    from ..store.bags import write_bags
    from ..store.dataset import dataset_file
    from ..ui import stage_progress

    opts = BagOptions(**options)
    opts.check()
    if opts.blocks and add_study:
        raise UserError("--add-study builds each study's bags by clumping its own significant variants; it cannot be "
                        "combined with --blocks (build each study's bags.h5 from its own blocks file instead)")
    if opts.drop_unknown and not opts.blocks:
        raise UserError("option --drop-unknown applies to --blocks rows; give --blocks FILE or leave it out")
    dataset = Path(dataset)
    dataset_file(dataset)
    for other in add_study:
        dataset_file(other)
    names = _unique_names([dataset, *add_study])
    # everything, the write included, under the bar: an error erases it and stays the
    # only line printed
    with stage_progress(progress) as bar:
        studies = [build_study(d, n, opts, bar) for d, n in zip([dataset, *add_study], names)]
        bagset = combine_studies(studies, opts, dataset_file(dataset))
        for line in bagset.summary["notes"]:
            print(line, file=sys.stderr)
        if dry_run:
            return _dry_run_plan(dataset, add_study, bagset, studies[0].fingerprint, opts, t_start)
        try:
            write_bags(dataset, bagset, studies[0].fingerprint)
        except OSError as exc:
            # name bags.h5, not the temporary file the error was raised on
            raise UserError(f"cannot write the bag store: {_os_reason(exc)}", path=dataset / "bags.h5") from None
    return bagset.summary


def _dry_run_plan(dataset: Path, add_study, bagset, fingerprint, opts: BagOptions, t_start: float) -> dict:
    """bags' dry run once the bags are built (timed): bags.h5 written into memory for
    its size, the time of that write added as the estimate of the real one."""
    import time

    from ..store import dry_run as dr
    from ..store.bags import BAGS_FILE, fill_bags
    from ..store.dataset import dataset_file

    dest = dataset / BAGS_FILE
    dr.check_writable(dest, "the bag store")
    measured = time.perf_counter() - t_start
    _, nbytes, t_write = dr.write_in_memory(lambda f5: fill_bags(f5, bagset, fingerprint))
    reads = [{"role": "dataset", "path": str(dataset_file(d)), "bytes": dr.file_bytes(dataset_file(d))}
             for d in [dataset, *add_study]]
    if opts.blocks:
        reads.append({"role": "blocks", "path": str(opts.blocks), "bytes": dr.file_bytes(opts.blocks)})
    counts = {k: v for k, v in bagset.summary.items() if k != "notes"}
    basis = [f"bags --dry-run: the bags built as the run builds them ({measured:.3g} s, measured: the clumping "
             f"is the stage); bags.h5 written into memory ({t_write:.3g} s, {nbytes:,} bytes)",
             "peak memory: this process's peak while it built them"]
    return dr.plan("bags", reads=reads, writes=[{"path": str(dest), "bytes": float(nbytes),
                                                 "replaces": dest.is_file()}],
                   counts=counts, counts_exact=True, seconds_measured=measured, seconds_estimated=t_write,
                   memory_bytes=dr.peak_rss_bytes(), basis=basis, dataset=str(dataset),
                   # atomic_path writes the new file next to the old one, then renames it
                   disk_peak_bytes=nbytes + (dr.file_bytes(dest) or 0))


def _os_reason(exc: OSError) -> str:
    import errno

    return {errno.EROFS: "read-only file system (the dataset directory must be writable)",
            errno.ENOSPC: "no space left on the device", errno.EACCES: "permission denied",
            errno.EPERM: "permission denied"}.get(exc.errno, exc.strerror or str(exc))


def combine_studies(studies: list, opts: BagOptions, path):
    """One :class:`~varfx.store.bags.BagSet` on the variants of ``studies[0]``: the other
    studies' bags and negatives mapped onto them by chromosome, position and alleles."""
    from ..store.bags import BAGS_FILE, Bag, BagSet

    main, others = studies[0], studies[1:]
    if main.fingerprint is None:
        raise UserError("dataset.h5 has no content fingerprint (written by an older varfx); re-run `varfx ingest`",
                        path=path)
    v = main.variants
    keys = v.key_index() if others else {}
    positives: list[Bag] = []
    negatives = [main.negatives]
    # positions (on this dataset's chromosomes and build) that negatives must avoid
    hit_chrom, hit_bp = [v.chrom[main.hits]], [v.bp[main.hits]]
    per_study = {}

    def add(study, mapped_bags):
        for raw in mapped_bags:
            idx = raw.variants
            positives.append(Bag(index=len(positives), name=raw.name, chrom=int(v.chrom[idx[0]]),
                                 start=int(v.bp[idx].min()), end=int(v.bp[idx].max()), variants=idx,
                                 study=study.name, signal=raw.signal))

    add(main, main.bags)
    per_study[main.name] = {"dataset": str(main.dataset), **main.counts, "bags": len(main.bags),
                            "members": int(sum(len(b.variants) for b in main.bags)),
                            "negatives": int(len(main.negatives))}
    unmatched = {"members": 0, "bags_below_min_size": 0, "negatives": 0}
    for st in others:
        ov = st.variants
        mapping = np.array([keys.get(ov.allele_key(i), -1) for i in range(ov.n)], dtype=np.int64)
        mapped, lost, below = [], 0, 0
        for raw in st.bags:
            m = mapping[raw.variants]
            lost += int((m < 0).sum())
            m = m[m >= 0]  # the order (most significant in its own study first) is kept
            if len(m) < opts.min_bag_size:
                below += 1
                continue
            mapped.append(RawBag(name=raw.name, variants=m, signal=raw.signal))
        neg = mapping[st.negatives]
        neg_lost = int((neg < 0).sum())
        negatives.append(neg[neg >= 0])
        hit_chrom.append(ov.chrom[st.hits])
        hit_bp.append(ov.bp[st.hits])
        add(st, mapped)
        lost_here = {"members": lost, "bags_below_min_size": below, "negatives": neg_lost}
        for k in unmatched:
            unmatched[k] += lost_here[k]
        per_study[st.name] = {"dataset": str(st.dataset), **st.counts, "bags": len(mapped),
                              "members": int(sum(len(b.variants) for b in mapped)),
                              "negatives": int(len(neg) - neg_lost), "unmatched_across_studies": lost_here}
    neg = np.unique(np.concatenate(negatives)).astype(np.int64)
    cross_removed = 0
    if others:
        # a negative of one study near a hit of another is no negative for a model that
        # learns what makes a variant causal for any trait (distance 1 bp at least: a
        # hit's own position is always excluded)
        near = _near(v.chrom[neg], v.bp[neg], np.concatenate(hit_chrom), np.concatenate(hit_bp),
                     max(opts.neg_exclude_kb * 1000.0, 1.0))
        if positives:
            near |= np.isin(neg, np.concatenate([b.variants for b in positives]))
        cross_removed = int(near.sum())
        neg = neg[~near]

    def total(key):
        return int(sum(s.counts.get(key, 0) for s in studies))

    if not positives:
        raise UserError(f"no positive bag left: all {total('blocks')} blocks have fewer than --min-bag-size "
                        f"{opts.min_bag_size} variants{' in this dataset' if others else ''}; lower --min-bag-size"
                        f"{'' if opts.blocks else ', or raise --clump-kb or --p-threshold'}", path=path)
    if not len(neg):
        raise UserError("no negative variant: none is common (--neg-maf-min), unassociated (--neg-p-min) and far "
                        "enough from every hit (--neg-exclude-kb)", path=path)
    sizes = [b.n for b in positives]
    dataset = Path(main.dataset)
    summary = {
        "dataset": str(dataset),
        "bags_file": str(dataset / BAGS_FILE),
        "mode": "blocks" if opts.blocks else "clump",
        "bags": len(positives),
        "bag_size": _quantiles(sizes),
        "members": int(sum(sizes)),
        "negatives": int(len(neg)),
        "studies": per_study,
        "dropped": {
            "below_min_size": total("below_min_size"),
            "truncated_to_max_size": total("truncated_to_max_size"),
            "members_truncated": total("members_truncated"),
            "unknown_rows": total("unknown_rows"),
            "unmatched_across_studies": unmatched,
            "negatives_near_another_studys_hit": cross_removed,
            "outside_ld_region": total("outside_ld_region"),
        },
    }
    notes = []
    skipped = [s.name for s in studies if s.counts["negative_filters"]["maf_filter"] != "applied"]
    if skipped:
        notes.append(f"varfx: note: {', '.join(skipped)}: the dataset has no allele frequencies (an LD reference "
                     "without them, e.g. UKBB regions with LDSC sumstats): negatives are not filtered by "
                     "--neg-maf-min")
    if summary["dropped"]["outside_ld_region"]:
        notes.append(f"varfx: warning: {summary['dropped']['outside_ld_region']} significant variants within "
                     "--clump-kb of a lead lie outside the LD region chosen for it and could not join its block "
                     "(see docs/bags.md)")
    params = {k: getattr(opts, k) for k in opts.__dataclass_fields__}
    params["add_study"] = [str(s.dataset) for s in others]
    summary["params"] = params
    return BagSet(positives=positives, negatives=neg, negative_chrom=v.chrom[neg].astype(np.int64),
                  studies=[s.name for s in studies], params=params, summary={**summary, "notes": notes})
