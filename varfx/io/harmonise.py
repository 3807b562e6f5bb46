"""Match summary statistics to an LD reference and orient them to the reference alleles.

Rules (also in ``docs/formats.md``):

- Matching is by chromosome + position + allele pair when the summary statistics have
  CHR and BP columns, else by variant id (rsid).
- The dataset's alleles are the reference's (``a1`` = the reference's allele1 / PLINK A1).
  Z (and the sumstats frequency) is flipped when the sumstats' A1 is the reference's
  allele2 (``flipped``).  A non-ambiguous pair given on the other strand (e.g. T/C for a
  reference A/G) is accepted by complementing it (``strand_flipped``), possibly also
  swapped.  The LD matrix needs no change: it is already in the reference's orientation.
- Each sumstats row that is not matched is dropped for exactly one reason, checked in
  this order:

  ``duplicate``          the same key (chrom+pos+allele pair, or rsid when matching by
                         id) appears more than once in the sumstats, or two rows match
                         the same reference variant: every copy is dropped
  ``strand_ambiguous``   A/T or C/G pair (its strand cannot be told from the alleles)
  ``not_in_ld``          no reference variant at that position (or with that id)
  ``allele_mismatch``    a reference variant at that position (or with that id), but
                         with other alleles, even after complementing
  ``duplicate_in_ld``    the reference has the matching variant more than once
  other reasons          the reference excluded the variant (e.g. ``monomorphic_in_ld``)

  so ``read == matched + sum(dropped.values())``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..genome import complement  # one base, None otherwise (importable from here as before)

AMBIGUOUS = frozenset({("A", "T"), ("T", "A"), ("C", "G"), ("G", "C")})

DROP_REASONS = ("duplicate", "strand_ambiguous", "not_in_ld", "allele_mismatch", "duplicate_in_ld")


def is_ambiguous(a1: str, a2: str) -> bool:
    return (a1, a2) in AMBIGUOUS


@dataclass
class Harmonised:
    """The result of :func:`harmonise`, in reference order (chrom, bp, reference row).

    ``ss_index`` / ``ref_index``: matched rows of the sumstats / reference;
    ``flip``: Z (and sumstats frequency) must be negated (1 - freq);
    ``strand``: the sumstats alleles were complemented to match.
    """

    ss_index: np.ndarray
    ref_index: np.ndarray
    flip: np.ndarray
    strand: np.ndarray
    match_by: str
    counts: dict = field(default_factory=dict)
    reason: np.ndarray | None = None  # per sumstats row: "" when matched, else the drop reason


def _pair_key(a1: str, a2: str):
    return (a1, a2) if a1 <= a2 else (a2, a1)


def _ambiguous_strand(a1, ref_a1, p, q, maf_max):
    """(flip, strand) for an A/T or C/G variant from the frequencies, or None.

    ``p``: frequency of the sumstats' A1; ``q``: of the reference's allele1.  On the same
    strand the sumstats' A1 is the reference allele it spells; on the other strand it is
    the other one (A1 complemented = the other allele of an ambiguous pair).
    """
    if not (np.isfinite(p) and np.isfinite(q)) or min(p, 1 - p) >= maf_max or min(q, 1 - q) >= maf_max:
        return None
    same_letters = a1 == ref_a1
    p_ref = p if same_letters else 1 - p  # freq of the reference's allele1, same strand
    if abs(p_ref - q) <= abs((1 - p_ref) - q):
        return (not same_letters, False)
    return (same_letters, True)


def harmonise(ss: dict, ref: dict, *, by: str = "auto", ref_excluded: dict | None = None,
              ref_freq=None, ambiguous_maf_max: float = 0.0) -> Harmonised:
    """Match sumstats rows to reference variants.

    ``ss`` and ``ref`` are dicts of arrays with ``snp chrom bp a1 a2`` (upper-case
    alleles).  ``by`` is ``"position"``, ``"rsid"`` or ``"auto"`` (position when the
    sumstats have valid CHR and BP).  ``ref_excluded`` maps a drop reason to a boolean
    mask over reference rows (e.g. ``{"monomorphic_in_ld": mono}``): sumstats rows that
    match such a reference variant are dropped with that reason.

    Strand-ambiguous pairs (A/T, C/G) are dropped unless ``ambiguous_maf_max`` > 0 and
    both frequencies are known (``ss["freq"]``, of the sumstats' A1, and ``ref_freq``,
    of the reference's allele1) with minor allele frequencies below it: then the strand
    is the one under which the two frequencies agree (``ambiguous_resolved``).  Near
    0.5 frequencies cannot tell the strands apart, hence the threshold (0.4 is usual).
    """
    m = len(ss["snp"])
    r = len(ref["snp"])
    if by == "auto":
        has_pos = getattr(ss, "has_position", True) and m > 0
        by = "position" if has_pos and bool(np.any((ss["chrom"] >= 0) & (ss["bp"] >= 0))) else "rsid"
    if by not in ("position", "rsid"):
        raise ValueError(f"by must be 'position', 'rsid' or 'auto', not {by!r}")

    s_a1 = ss["a1"].tolist()
    s_a2 = ss["a2"].tolist()
    r_a1 = ref["a1"].tolist()
    r_a2 = ref["a2"].tolist()

    # --- reference keys ----------------------------------------------------------------
    lookup: dict = {}
    dup_keys: set = set()
    if by == "position":
        r_chrom = ref["chrom"].tolist()
        r_bp = ref["bp"].tolist()
        r_keys = [(c, b) + _pair_key(x, y) for c, b, x, y in zip(r_chrom, r_bp, r_a1, r_a2)]
        positions = set(zip(r_chrom, r_bp))
    else:
        r_keys = ref["snp"].tolist()
        positions = None
    for j, k in enumerate(r_keys):
        if k in lookup:
            dup_keys.add(k)
        else:
            lookup[k] = j
    ref_dup = np.zeros(r, dtype=bool)
    if dup_keys:
        ref_dup = np.fromiter((k in dup_keys for k in r_keys), dtype=bool, count=r)

    excluded = []
    for reason, mask in (ref_excluded or {}).items():
        excluded.append((reason, np.asarray(mask, dtype=bool)))

    # --- sumstats keys -----------------------------------------------------------------
    if by == "position":
        s_chrom = ss["chrom"].tolist()
        s_bp = ss["bp"].tolist()
        s_keys = [(c, b) + _pair_key(x, y) for c, b, x, y in zip(s_chrom, s_bp, s_a1, s_a2)]
    else:
        s_keys = ss["snp"].tolist()
    s_count = Counter(s_keys)

    reason = [""] * m
    ss_freq = np.asarray(ss["freq"], dtype=np.float64) if "freq" in ss else np.full(m, np.nan)
    ref_index = np.full(m, -1, dtype=np.int64)
    flip = np.zeros(m, dtype=bool)
    strand = np.zeros(m, dtype=bool)
    def accept(i, j):
        """Match row i to reference variant j unless the reference rules it out."""
        if ref_dup[j]:
            reason[i] = "duplicate_in_ld"
            return
        for why, mask in excluded:
            if mask[j]:
                reason[i] = why
                return
        ref_index[i] = j

    for i in range(m):
        k = s_keys[i]
        a1, a2 = s_a1[i], s_a2[i]
        if s_count[k] > 1:
            reason[i] = "duplicate"
            continue
        if (a1, a2) in AMBIGUOUS:
            j = lookup.get(k, -1) if ambiguous_maf_max > 0 and ref_freq is not None else -1
            side = _ambiguous_strand(a1, r_a1[j], ss_freq[i], ref_freq[j], ambiguous_maf_max) if j >= 0 else None
            if side is None:
                reason[i] = "strand_ambiguous"
                continue
            flip[i], strand[i] = side
            accept(i, j)
            continue
        c1, c2 = complement(a1), complement(a2)
        j = -1
        if by == "position":
            j = lookup.get(k, -1)
            if j < 0 and c1 is not None and c2 is not None:
                j = lookup.get(k[:2] + _pair_key(c1, c2), -1)
            if j < 0:
                reason[i] = "allele_mismatch" if k[:2] in positions else "not_in_ld"
                continue
        else:
            j = lookup.get(k, -1)
            if j < 0:
                reason[i] = "not_in_ld"
                continue
        ra1, ra2 = r_a1[j], r_a2[j]
        if (a1, a2) == (ra1, ra2):
            pass
        elif (a1, a2) == (ra2, ra1):
            flip[i] = True
        elif c1 is not None and c2 is not None and (c1, c2) == (ra1, ra2):
            strand[i] = True
        elif c1 is not None and c2 is not None and (c1, c2) == (ra2, ra1):
            strand[i] = flip[i] = True
        else:
            reason[i] = "allele_mismatch"
            continue
        accept(i, j)

    # Two sumstats rows on one reference variant (e.g. A/G and its complement T/C).
    hit = ref_index >= 0
    if hit.any():
        counts = np.bincount(ref_index[hit], minlength=r)
        multi = hit & (counts[np.where(hit, ref_index, 0)] > 1)
        for i in np.flatnonzero(multi):
            reason[i] = "duplicate"
        ref_index[multi] = -1

    matched = np.flatnonzero(ref_index >= 0)
    rj = ref_index[matched]
    order = np.lexsort((rj, ref["bp"][rj], ref["chrom"][rj]))
    matched = matched[order]

    dropped = {k: 0 for k in DROP_REASONS}
    for reason_name, mask in excluded:
        dropped.setdefault(reason_name, 0)
    for why, cnt in Counter(x for x in reason if x).items():
        dropped[why] = dropped.get(why, 0) + cnt
    counts = {
        "match_by": by,
        "read": int(m),
        "ld_variants": int(r),
        "ld_duplicates": int(ref_dup.sum()),
        "matched": int(len(matched)),
        "flipped": int(flip[matched].sum()),
        "strand_flipped": int(strand[matched].sum()),
        "ambiguous_resolved": int(sum((s_a1[i], s_a2[i]) in AMBIGUOUS for i in matched)),
        "dropped": dropped,
    }
    return Harmonised(
        ss_index=matched,
        ref_index=ref_index[matched],
        flip=flip[matched],
        strand=strand[matched],
        match_by=by,
        counts=counts,
        reason=np.array(reason, dtype=object),
    )


def multi_allelic_mask(chrom, bp, a1, a2) -> np.ndarray:
    """True for the rows at a position (chromosome + bp, both known) that carries more
    than one allele pair.  An SNV pair and its strand complement (A/G and T/C) are one
    pair: the same variant written on two strands, which the ``duplicate`` rule of
    :func:`harmonise` handles.  Vectorised (pyarrow dictionary codes + one sort)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    chrom = np.asarray(chrom, dtype=np.int64)
    bp = np.asarray(bp, dtype=np.int64)
    m = len(chrom)
    out = np.zeros(m, dtype=bool)
    idx = np.flatnonzero((chrom >= 0) & (bp >= 0))
    k = idx.size
    if k < 2:
        return out
    alleles = pa.array(np.concatenate([np.asarray(a1, dtype=object)[idx], np.asarray(a2, dtype=object)[idx]]),
                       type=pa.string())
    uniq = pc.unique(alleles)
    codes = pc.index_in(alleles, value_set=uniq).to_numpy(zero_copy_only=False).astype(np.int64)
    names = uniq.to_pylist()
    K = len(names)
    where = {s: i for i, s in enumerate(names)}
    comp = np.arange(K, dtype=np.int64)
    for i, s in enumerate(names):
        c = complement(s)
        if c is not None:
            comp[i] = where.get(c, K + "ACGT".index(c))
    comp = np.concatenate([comp, np.arange(K, K + 4)])  # complements not in the file map to themselves
    u, v = codes[:k], codes[k:]
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    cu, cv = comp[u], comp[v]
    clo, chi = np.minimum(cu, cv), np.maximum(cu, cv)
    base = K + 4
    pair = np.minimum(lo * base + hi, clo * base + chi)
    pos = (chrom[idx] << 32) | bp[idx]
    order = np.lexsort((pair, pos))
    sp, sc = pos[order], pair[order]
    same_pos = sp[1:] == sp[:-1]
    gid = np.concatenate(([0], np.cumsum(~same_pos)))
    multi = np.zeros(int(gid[-1]) + 1, dtype=bool)
    multi[gid[1:][same_pos & (sc[1:] != sc[:-1])]] = True
    out[idx[order]] = multi[gid]
    return out
