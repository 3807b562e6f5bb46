"""Genome build conversion of variant positions with a UCSC chain file (pyliftover).

The chain file is an input (e.g. UCSC ``hg19ToHg38.over.chain.gz``): nothing is ever
downloaded.  :func:`load_chain` checks the file before pyliftover parses it, so a wrong
file is a one-line :class:`~varfx.errors.UserError`, not a traceback.

Coordinates: varfx positions are **1-based** (as in ``.bim``, VCF and sumstats files);
pyliftover works on **0-based** positions.  :func:`lift_positions` takes and returns
1-based positions and converts at the boundary (``pos - 1`` in, ``+ 1`` out).  A base
that a chain maps onto the minus strand of the target is returned at its target
plus-strand position (``minus_strand`` in the report): its alleles, read on the target's
plus strand, are the complements of the source's.

A variant that cannot be lifted is dropped for exactly one reason, checked in this order:

``invalid``        its chromosome code or position is unusable (chrom < 1, pos < 1)
``unknown_chrom``  the chain file has no chain from its chromosome
``unmapped``       no chain block contains the position (a gap in the alignment)
``multiple``       several chain blocks contain it (it maps to several places)
``other_chrom``    it maps to another chromosome, or to an alt/random/unplaced contig

so ``read == lifted + moved + sum(dropped)``.

With ``move_to_neighbour=True`` a failed variant (``unmapped``, ``multiple`` or
``other_chrom``) is not dropped but placed next to its nearest lifted neighbour on the
same source chromosome (smallest ``|pos - pos_nb|``; on a tie, the upstream one): it
takes the neighbour's target chromosome and ``new_pos_nb + (pos - pos_nb)`` (``-`` when
the neighbour maps to the minus strand).  This keeps every variant of an LD reference
(whose rows must not be dropped) at a position consistent with its LD neighbourhood (in
the spirit of DeepWAS, whose exact rule was not checked); a moved variant's position is
an approximation, not a real coordinate, and it inherits its neighbour's strand.  Moved
variants are counted (``moved``); a move that would give a position below 1 is not made
(the variant is dropped with its original reason).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..genome import chrom_code as parse_chrom
from ..genome import chrom_codes as _chrom_codes
from ..genome import read_bytes as read_file_bytes

LIFT_REASONS = ("invalid", "unknown_chrom", "unmapped", "multiple", "other_chrom")
MOVABLE = ("unmapped", "multiple", "other_chrom")

_BUILD_RE = re.compile(r"^([A-Za-z]+\d+)To([A-Za-z]+\d+)", re.IGNORECASE)


@dataclass
class Chain:
    """A loaded chain file: the pyliftover ``LiftOver`` and what varfx needs around it.

    ``source_build`` / ``target_build`` come from a UCSC-style file name
    (``hg19ToHg38.over.chain.gz`` -> ``hg19``, ``hg38``), else ``None``.
    ``names`` maps a varfx chromosome code (1-22, 23 X, 24 Y, 26 MT) to the chain's own
    source name for it (``chr22`` or ``22``).
    """

    path: Path
    liftover: object
    names: dict
    source_build: str | None = None
    target_build: str | None = None

    def convert_coordinate(self, chrom_name, pos0, strand="+"):
        """pyliftover's ``convert_coordinate`` (0-based)."""
        return self.liftover.convert_coordinate(chrom_name, pos0, strand)


@dataclass
class LiftReport:
    """What :func:`lift_positions` did.

    ``reason``: per variant, ``""`` when lifted (or moved), else the drop reason (a
    moved variant keeps the reason it failed for, see ``moved``);
    ``minus_strand``: lifted onto the target's minus strand (alleles complemented);
    ``moved``: placed next to a neighbour (``move_to_neighbour``);
    ``counts``: ``read``, ``lifted``, ``moved``, ``minus_strand``, ``failed`` (by reason,
    before moving) and ``dropped`` (by reason, after moving), JSON-serialisable.
    """

    reason: np.ndarray
    minus_strand: np.ndarray
    moved: np.ndarray
    counts: dict = field(default_factory=dict)


def chain_builds(path) -> tuple[str | None, str | None]:
    """``(source, target)`` builds from a UCSC chain file name, e.g. ``hg19ToHg38.over.chain.gz``
    -> ``("hg19", "hg38")``; ``(None, None)`` when the name does not say."""
    m = _BUILD_RE.match(Path(path).name)
    if not m:
        return None, None
    src, dst = m.group(1), m.group(2)
    return src[0].lower() + src[1:], dst[0].lower() + dst[1:]


def _chain_bytes(path: Path) -> bytes:
    return read_file_bytes(path, "a UCSC chain file, e.g. hg19ToHg38.over.chain.gz")


_HEADER = "chain score tName tSize tStrand tStart tEnd qName qSize qStrand qStart qEnd [id]"


def _check_chain_text(data: bytes, path: Path) -> None:
    """Validate the whole chain file, naming the line of the first problem: the first
    non-empty line starts with ``chain``; each header has 12 or 13 fields with integer
    sizes and coordinates; each chain's ``size dt dq`` lines end with a single ``size``
    line and add up to the header's ``tEnd`` and ``qEnd``."""
    lines = data.split(b"\n")
    n_chains = 0
    cur = None  # [t, q, tEnd, qEnd, header line]
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        fields = line.split()
        if cur is None:
            if fields[0] != b"chain":
                shown = line[:40].decode("utf-8", "replace")
                what = "not a chain file: expected" if n_chains == 0 else "expected"
                raise UserError(
                    f"{what} a line starting with 'chain' ({_HEADER}), found {shown!r}", path=path, line=lineno
                )
            try:
                if len(fields) not in (12, 13) or fields[4] != b"+" or fields[9] not in (b"+", b"-"):
                    raise ValueError
                t_size, t0, t1, q_size, q0, q1 = (int(fields[k]) for k in (3, 5, 6, 8, 10, 11))
                int(fields[1])
                if not (0 <= t0 <= t1 <= t_size and 0 <= q0 <= q1 <= q_size):
                    raise ValueError
            except ValueError:
                raise UserError(f"malformed chain header: expected '{_HEADER}'", path=path, line=lineno) from None
            cur = [t0, q0, t1, q1, lineno]
            n_chains += 1
            continue
        try:
            nums = [int(x) for x in fields]
            if len(nums) not in (1, 3) or min(nums) < 0:
                raise ValueError
        except ValueError:
            raise UserError(
                "malformed alignment line: expected 'size dt dq' or a last 'size'", path=path, line=lineno
            ) from None
        cur[0] += nums[0] + (nums[1] if len(nums) == 3 else 0)
        cur[1] += nums[0] + (nums[2] if len(nums) == 3 else 0)
        if len(nums) == 1:
            if (cur[0], cur[1]) != (cur[2], cur[3]):
                raise UserError(
                    f"the alignment blocks of the chain on line {cur[4]} end at {cur[0]}/{cur[1]}, "
                    f"its header says {cur[2]}/{cur[3]} (truncated or corrupt chain)",
                    path=path,
                    line=lineno,
                )
            cur = None
    if n_chains == 0:
        raise UserError("empty chain file: expected lines starting with 'chain'", path=path)
    if cur is not None:
        raise UserError(
            f"the chain on line {cur[4]} has no last 'size' line (truncated chain file)", path=path, line=len(lines)
        )


def load_chain(path) -> Chain:
    """Load a UCSC chain file (plain or gzip, detected from its first bytes) from a local
    path with pyliftover; never downloads.  A file that is not a chain file, a corrupt
    gzip or a malformed chain is a :class:`UserError` naming the file."""
    path = Path(path)
    data = _chain_bytes(path)
    _check_chain_text(data, path)
    try:
        from pyliftover import LiftOver
    except ImportError:  # pragma: no cover - depends on the installation
        raise UserError("build conversion needs pyliftover: pip install pyliftover", path=path) from None
    try:
        # A file object: pyliftover never looks anything up for it (no cache, no web).
        lo = LiftOver(io.BytesIO(data))
    except Exception as exc:  # pyliftover raises bare Exception / ValueError / IndexError
        detail = " ".join(str(exc).split())
        raise UserError(f"malformed chain file ({detail})", path=path) from None
    names: dict = {}
    for name in lo.chain_file.chain_index.keys():
        code = parse_chrom(name)
        if code > 0 and code not in names:
            names[code] = name
    if not names:
        raise UserError("chain file has no chains from a primary chromosome (chr1-22, X, Y, M)", path=path)
    src, dst = chain_builds(path)
    return Chain(path=path, liftover=lo, names=names, source_build=src, target_build=dst)


def _as_chain(chain) -> Chain:
    if isinstance(chain, Chain):
        return chain
    if isinstance(chain, (str, Path)):
        return load_chain(chain)
    # a bare pyliftover.LiftOver
    names = {}
    for name in chain.chain_file.chain_index.keys():
        code = parse_chrom(name)
        if code > 0 and code not in names:
            names[code] = name
    return Chain(path=Path("<LiftOver>"), liftover=chain, names=names)


def lift_positions(chain, chrom, pos, *, move_to_neighbour: bool = False):
    """Lift 1-based positions with a chain (from :func:`load_chain`).

    ``chrom``: chromosome codes (int, PLINK numbering: 23 X, 24 Y, 25 XY, 26 MT) or names
    (``"22"``, ``"chr22"``, ``"X"``), matched to the chain's names with or without ``chr``;
    ``pos``: 1-based positions.  Returns ``(new_chrom, new_pos, ok, report)``:
    ``new_chrom`` int64 codes (``-1`` where not ok; an ``XY`` variant stays ``25``),
    ``new_pos`` int64 1-based (``-1`` where not ok), ``ok`` bool, ``report`` a
    :class:`LiftReport`.  See the module docstring for the reasons and
    ``move_to_neighbour``.
    """
    ch = _as_chain(chain)
    codes = _chrom_codes(chrom).ravel()
    p = np.asarray(pos)
    if p.dtype.kind == "f":
        p = np.where(np.isfinite(p), p, -1)
    p = p.astype(np.int64).ravel()
    if len(codes) != len(p):
        raise ValueError(f"chrom and pos differ in length ({len(codes)} != {len(p)})")
    m = len(p)
    new_chrom = np.full(m, -1, dtype=np.int64)
    new_pos = np.full(m, -1, dtype=np.int64)
    minus = np.zeros(m, dtype=bool)
    reason = np.full(m, "", dtype=object)
    lo = ch.liftover
    name_of = dict(ch.names)
    if 25 not in name_of and 23 in name_of:
        name_of[25] = name_of[23]  # PLINK XY (pseudo-autosomal) lives on X

    for code in np.unique(codes):
        sel = np.flatnonzero(codes == code)
        if code < 1:
            reason[sel] = "invalid"
            continue
        name = name_of.get(int(code))
        if name is None:
            reason[sel] = "unknown_chrom"
            continue
        same = {int(code)} | ({23} if code == 25 else set())
        convert = lo.convert_coordinate
        for i in sel.tolist():
            q = int(p[i])
            if q < 1:
                reason[i] = "invalid"
                continue
            hits = convert(name, q - 1)
            if not hits:
                reason[i] = "unmapped"
                continue
            if len(hits) > 1:
                reason[i] = "multiple"
                continue
            tname, tpos0, tstrand, _score = hits[0]
            tcode = parse_chrom(tname)
            if tcode not in same:
                reason[i] = "other_chrom"
                continue
            new_chrom[i] = code
            new_pos[i] = int(tpos0) + 1
            minus[i] = tstrand == "-"

    ok = reason == ""
    failed = {k: int(np.sum(reason == k)) for k in LIFT_REASONS}
    moved = np.zeros(m, dtype=bool)
    if move_to_neighbour:
        movable = np.isin(reason, MOVABLE)
        for code in np.unique(codes[movable]):
            on = codes == code
            good = np.flatnonzero(on & ok)
            if good.size == 0:
                continue
            good = good[np.argsort(p[good], kind="stable")]
            gp = p[good]
            for i in np.flatnonzero(on & movable).tolist():
                k = int(np.searchsorted(gp, p[i]))
                cand = [j for j in (k - 1, k) if 0 <= j < len(gp)]
                # nearest; on a tie the upstream neighbour (listed first)
                j = min(cand, key=lambda j: abs(int(gp[j]) - int(p[i])))
                nb = good[j]
                off = int(p[i]) - int(p[nb])
                q = int(new_pos[nb]) + (-off if minus[nb] else off)
                if q < 1:
                    continue
                new_chrom[i] = new_chrom[nb]
                new_pos[i] = q
                minus[i] = minus[nb]
                moved[i] = True
    ok = (reason == "") | moved
    dropped = {k: int(np.sum((reason == k) & ~moved)) for k in LIFT_REASONS}
    counts = {
        "read": int(m),
        "lifted": int(np.sum(reason == "")),
        "moved": int(moved.sum()),
        "minus_strand": int(np.sum(minus & ok)),
        "failed": failed,
        "dropped": dropped,
    }
    new_chrom[~ok] = -1
    new_pos[~ok] = -1
    minus[~ok] = False
    report = LiftReport(reason=reason, minus_strand=minus, moved=moved, counts=counts)
    return new_chrom, new_pos, ok, report


def lift_table(chain, table, *, move_to_neighbour: bool = False):
    """Lift a variant table (a dict of per-variant arrays with ``chrom`` and ``bp``, e.g.
    :class:`~varfx.io.sumstats.Sumstats` or a PLINK ``bim``) and keep the rows that lifted.

    Returns ``(lifted, kept, report)``: ``lifted`` is a shallow copy of ``table`` (same
    type and attributes) whose per-variant arrays are restricted to the kept rows, with
    ``chrom`` and ``bp`` replaced by the lifted ones; ``kept`` the int64 indices of the
    kept rows in ``table``; ``report`` the :class:`LiftReport` over all rows.  Alleles are
    left as they are (see ``report.minus_strand``: harmonisation complements them).
    """
    import copy

    m = len(table["bp"])
    new_chrom, new_pos, ok, report = lift_positions(chain, table["chrom"], table["bp"],
                                                    move_to_neighbour=move_to_neighbour)
    kept = np.flatnonzero(ok)
    out = copy.copy(table)
    for key, val in list(table.items()):
        if isinstance(val, np.ndarray) and val.ndim >= 1 and len(val) == m:
            out[key] = val[kept]
    dt = np.asarray(table["chrom"]).dtype
    out["chrom"] = new_chrom[kept].astype(dt if dt.kind in "iu" else np.int64)
    out["bp"] = new_pos[kept].astype(np.int64)
    return out, kept, report


def detect_build_mismatch(
    sumstats,
    ref,
    *,
    min_shared: int = 50,
    max_agree: float = 0.5,
    names: tuple[str, str] = ("the sumstats", "the LD reference"),
):
    """A one-line message when two variant tables look like different genome builds, else None.

    ``sumstats`` and ``ref`` are dicts of arrays with ``chrom`` (int codes, -1 missing),
    ``bp`` (1-based, -1 missing) and ``snp`` (ids).  Among the variants whose id occurs
    in both (ignoring ``.``/empty/``NA`` ids and ids listed twice in ``ref``), the share
    whose chromosome + position is the same in both tables decides: when at least
    ``min_shared`` ids are shared and fewer than ``max_agree`` of them sit at the same
    position, the builds differ.  With no usable positions or ids there is nothing to
    tell, and the answer is None.

    The message gives the share of sumstats positions found in the reference, the
    share of sumstats ids found there, and the median position difference of the
    shared ids, e.g. ``the sumstats look like a different genome build than the LD
    reference (only 0.1% of positions match, 100.0% of rsids do; median position
    difference -480,662 bp): use --liftover CHAIN``.
    """
    s_snp = np.asarray(sumstats["snp"]).astype(str)
    r_snp = np.asarray(ref["snp"]).astype(str)
    s_chrom = np.asarray(sumstats["chrom"]).astype(np.int64)
    s_bp = np.asarray(sumstats["bp"]).astype(np.int64)
    r_chrom = np.asarray(ref["chrom"]).astype(np.int64)
    r_bp = np.asarray(ref["bp"]).astype(np.int64)
    m = len(s_snp)
    s_has_pos = (s_chrom > 0) & (s_bp > 0)
    if m == 0 or not s_has_pos.any() or len(r_snp) == 0:
        return None

    bad_ids = {".", "", "NA", "nan"}
    ids, counts = np.unique(r_snp, return_counts=True)
    unique_ids = set(ids[counts == 1].tolist()) - bad_ids
    where = {s: j for j, s in enumerate(r_snp.tolist()) if s in unique_ids}
    s_list = s_snp.tolist()
    j = np.fromiter((where.get(s, -1) for s in s_list), dtype=np.int64, count=m)
    shared = (j >= 0) & s_has_pos
    n_shared = int(shared.sum())
    if n_shared < min_shared:
        return None
    jj = j[shared]
    same = (r_chrom[jj] == s_chrom[shared]) & (r_bp[jj] == s_bp[shared])
    agree = float(same.mean())
    if agree >= max_agree:
        return None

    ref_pos = set(zip(r_chrom.tolist(), r_bp.tolist()))
    pos_found = np.fromiter(
        ((c, b) in ref_pos for c, b in zip(s_chrom[s_has_pos].tolist(), s_bp[s_has_pos].tolist())),
        dtype=bool,
        count=int(s_has_pos.sum()),
    )
    pct_pos = 100.0 * pos_found.mean()
    id_ok = ~np.isin(s_snp, list(bad_ids))
    pct_id = 100.0 * float(np.mean(j[id_ok] >= 0)) if id_ok.any() else 0.0
    on_same_chrom = r_chrom[jj] == s_chrom[shared]
    extra = ""
    if on_same_chrom.any():
        diff = int(np.median(s_bp[shared][on_same_chrom] - r_bp[jj][on_same_chrom]))
        extra = f"; median position difference {diff:+,} bp"
    return (
        f"{names[0]} look like a different genome build than {names[1]} (only {pct_pos:.1f}% of positions "
        f"match, {pct_id:.1f}% of rsids do{extra}): use --liftover CHAIN"
    )
