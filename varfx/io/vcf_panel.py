"""LD reference panels in VCF/BCF (read with pysam), with the interface of a PLINK panel.

:func:`load_vcf_panel` returns a :class:`VcfPanel` that behaves like
:class:`varfx.io.plink.PlinkPanel` for ingest: a ``bim`` table (``chrom snp cm bp a1 a2``),
``n_people``, ``n_snps``, ``genotypes(index)`` (int8 dosages of ``a1``: 0, 1, 2, -1
missing) and ``summary_stats()`` (``a1`` frequency, monomorphic flag).

Allele convention (the same as ``plink --vcf``): **a1 = ALT, a2 = REF**, and the dosage
is the number of ALT alleles.  Harmonisation orients every dataset variant to the
reference's ``a1``, so Z, frequencies and R all refer to the ALT allele of the panel.

What is read:

- biallelic SNPs only: one ALT, REF and ALT each a single base A/C/G/T.  Other records
  are skipped and counted by reason: ``multiallelic`` (more than one ALT; split them
  with ``bcftools norm -m-`` first if they matter), ``no_alt`` (ALT ``.``),
  ``not_snp`` (indels, symbolic or ``*`` alleles), ``unknown_chrom`` (a contig that is
  not chr1-22, X, Y, XY, MT), ``maf`` (minor allele frequency below ``maf_min``);
- dosages from ``GT`` (default): diploid ``0/0 0/1 1/1`` (phased or not) -> 0, 1, 2;
  a call with a missing allele (``./.``, ``0/.``) -> -1; a haploid call (chrX in males)
  ``0``/``1`` -> 0/2 (PLINK's convention: a haploid genotype counts as homozygous);
  ``field="DS"`` reads the ALT dosage instead, rounded to the nearest of 0, 1, 2
  (missing ``.`` -> -1);
- ``ID`` ``.`` becomes ``chrom:pos:ref:alt`` (e.g. ``22:16050075:A:G``).

``region`` (``"22"``, ``"chr22:16000000-17000000"``; 1-based inclusive, chromosome
named with or without ``chr``) reads only that region and needs an index (``.tbi`` or
``.csi`` beside the file); without ``region`` the file is read from start to end and
needs none.  All dosages are held in memory (``n_snps x n_people`` bytes): restrict a
whole-genome panel with ``region``.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..genome import chrom_code as parse_chrom
from ..genome import parse_region as genome_parse_region

SKIP_REASONS = ("multiallelic", "no_alt", "not_snp", "unknown_chrom", "maf")
_BASES = frozenset("ACGT")

# GT strings -> ALT dosage; anything else goes through _parse_gt
_GT_FAST = {}
for _sep in "/|":
    for _a in "01.":
        for _b in "01.":
            _gt = f"{_a}{_sep}{_b}"
            _GT_FAST[_gt] = -1 if "." in (_a, _b) else int(_a) + int(_b)
_GT_FAST.update({"0": 0, "1": 2, ".": -1})


@dataclass
class VcfPanel:
    """A genotype panel read from a VCF/BCF file (see the module docstring)."""

    path: Path
    index_path: Path | None
    bim: dict
    samples: np.ndarray
    dosages: np.ndarray
    region: str | None = None
    field: str = "GT"
    maf_min: float = 0.0
    counts: dict = dc_field(default_factory=dict)

    kind = "vcf"

    @property
    def n_people(self) -> int:
        return int(self.dosages.shape[1])

    @property
    def n_snps(self) -> int:
        return int(self.dosages.shape[0])

    @property
    def inputs(self) -> list[tuple[str, Path]]:
        """(role, path) of the files read, for provenance."""
        out = [("ld_vcf", self.path)]
        if self.index_path is not None:
            out.append(("ld_vcf_index", self.index_path))
        return out

    def genotypes(self, index=None) -> np.ndarray:
        """int8 dosages of a1 (= ALT) (variants x people), -1 missing."""
        if index is None:
            return self.dosages.copy()
        return self.dosages[np.asarray(index, dtype=np.int64)]

    def summary_stats(self, chunk: int = 8192):
        """Per-variant (a1 frequency, monomorphic flag), as :meth:`PlinkPanel.summary_stats`."""
        g = self.dosages
        ok = g >= 0
        cnt = ok.sum(axis=1)
        tot = np.where(ok, g, 0).sum(axis=1, dtype=np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            freq = tot / (2.0 * cnt)
        gmax = np.where(ok, g, -1).max(axis=1, initial=-1)
        gmin = np.where(ok, g, 3).min(axis=1, initial=3)
        mono = (cnt == 0) | (gmax == gmin)
        return freq.astype(np.float64), mono


def find_index(path) -> Path | None:
    """The ``.tbi`` or ``.csi`` index beside a VCF/BCF file, or None."""
    path = Path(path)
    for ext in (".tbi", ".csi"):
        cand = path.with_name(path.name + ext)
        if cand.is_file():
            return cand
    return None


def parse_region(region: str):
    """``"chr22:1,000-2,000"`` -> ``("chr22", 1000, 2000)`` (1-based inclusive; None for open
    ends); see :func:`varfx.genome.parse_region`, which also checks the chromosome."""
    r = genome_parse_region(region)
    return r.chrom, r.start, r.end


@contextlib.contextmanager
def _quiet_htslib():
    import pysam

    prev = pysam.set_verbosity(0)
    try:
        yield
    finally:
        pysam.set_verbosity(prev)


def _open(path: Path):
    import pysam

    if not path.exists():
        raise UserError("no such file (expected a VCF/BCF genotype panel)", path=path)
    if path.is_dir():
        raise UserError("is a directory, expected a VCF/BCF genotype panel", path=path)
    try:
        with _quiet_htslib():
            vf = pysam.VariantFile(str(path), "r")
    except OSError as exc:  # e.g. "no BGZF EOF marker; file may be truncated"
        detail = " ".join(str(exc).split())
        raise UserError(
            f"cannot read as VCF/BCF ({detail}): expected a complete (bgzipped) VCF or BCF genotype panel", path=path
        ) from None
    except ValueError:
        raise UserError("not a VCF/BCF file: expected a (bgzipped) VCF or BCF genotype panel", path=path) from None
    if vf.format not in ("VCF", "BCF"):
        vf.close()
        raise UserError(f"not a VCF/BCF file (detected {vf.format}): expected a VCF or BCF genotype panel", path=path)
    return vf


def _fetch(vf, path: Path, region: str):
    chrom, start, end = parse_region(region)
    index = find_index(path)
    if index is None:
        raise UserError(
            f"reading region {region!r} needs an index beside the file ({path.name}.tbi or {path.name}.csi): "
            "run 'tabix -p vcf FILE' (VCF) or 'bcftools index FILE' (BCF), or leave out the region",
            path=path,
        )
    bare = chrom[3:] if chrom.lower().startswith("chr") else chrom
    candidates = [chrom] + [c for c in (bare, "chr" + bare) if c != chrom]
    for name in candidates:
        try:
            with _quiet_htslib():
                return vf.fetch(name, None if start is None else start - 1, end), index
        except ValueError:
            continue
    tried = " nor ".join(repr(c) for c in candidates)
    raise UserError(f"region {region!r}: neither {tried} is a chromosome in the file's index", path=path)


def _parse_gt(token: str, where: str, path: Path) -> int:
    alleles = re.split(r"[/|]", token)
    if len(alleles) > 2:
        raise UserError(f"{where}: genotype {token!r} is not haploid or diploid", path=path)
    if any(a == "." for a in alleles):
        return -1
    try:
        vals = [int(a) for a in alleles]
    except ValueError:
        raise UserError(f"{where}: expected a genotype like 0/1 or 1|1, found {token!r}", path=path) from None
    if any(v > 1 for v in vals):
        raise UserError(f"{where}: genotype {token!r} names an allele the record does not have", path=path)
    return 2 * vals[0] if len(vals) == 1 else vals[0] + vals[1]


def _parse_ds(token: str, where: str, path: Path) -> int:
    if token in (".", ""):
        return -1
    try:
        x = float(token)
    except ValueError:
        raise UserError(f"{where}: expected a numeric DS dosage, found {token!r}", path=path) from None
    if not np.isfinite(x) or x < -0.5 or x > 2.5:
        raise UserError(f"{where}: DS dosage {token!r} outside [0, 2]", path=path)
    return int(min(2, max(0, round(x))))


def _record_dosages(line: str, n: int, key: str, where: str, path: Path) -> np.ndarray:
    fields = line.rstrip("\n").split("\t")
    fmt = fields[8].split(":") if len(fields) > 8 else []
    if key not in fmt:
        raise UserError(
            f"{where}: no {key} field (FORMAT {fields[8] if len(fields) > 8 else '.'!r})"
            + ("; use field='DS' for dosage-only files" if key == "GT" else ""),
            path=path,
        )
    k = fmt.index(key)
    samples = fields[9:]
    if len(samples) != n:
        raise UserError(f"{where}: {len(samples)} genotype columns, the header lists {n} samples", path=path)
    if k == 0:
        toks = [s.split(":", 1)[0] for s in samples]
    else:
        toks = []
        for s in samples:
            parts = s.split(":")
            toks.append(parts[k] if k < len(parts) else ".")
    if key == "GT":
        get = _GT_FAST.get
        vals = [get(t) for t in toks]
        if None in vals:
            vals = [v if v is not None else _parse_gt(t, where, path) for v, t in zip(vals, toks)]
    else:
        vals = [_parse_ds(t, where, path) for t in toks]
    return np.array(vals, dtype=np.int8)


def _read_records(records, n: int, field: str, path: Path):
    """Dosages and table columns of the biallelic SNPs among ``records``."""
    skipped = {k: 0 for k in SKIP_REASONS}
    cols = {k: [] for k in ("chrom", "snp", "bp", "a1", "a2")}
    rows = []
    n_records = 0
    try:
        for rec in records:
            n_records += 1
            alts = rec.alts
            if not alts:
                skipped["no_alt"] += 1
                continue
            if len(alts) > 1:
                skipped["multiallelic"] += 1
                continue
            ref, alt = rec.ref.upper(), alts[0].upper()
            if len(ref) != 1 or len(alt) != 1 or ref not in _BASES or alt not in _BASES:
                skipped["not_snp"] += 1
                continue
            code = parse_chrom(rec.chrom)
            if code < 0:
                skipped["unknown_chrom"] += 1
                continue
            where = f"record {rec.chrom}:{rec.pos}"
            rows.append(_record_dosages(str(rec), n, field, where, path))
            snp = rec.id if rec.id not in (None, ".", "") else f"{code}:{rec.pos}:{ref}:{alt}"
            cols["chrom"].append(code)
            cols["snp"].append(snp)
            cols["bp"].append(rec.pos)
            cols["a1"].append(alt)
            cols["a2"].append(ref)
    except (ValueError, OSError) as exc:
        detail = " ".join(str(exc).split())
        raise UserError(
            f"malformed or truncated VCF/BCF: record {n_records + 1} cannot be read ({detail})", path=path
        ) from None
    return rows, cols, skipped, n_records


def load_vcf_panel(path, *, region: str | None = None, maf_min: float = 0.0, field: str = "GT") -> VcfPanel:
    """Read the biallelic SNPs of a VCF/BCF genotype panel (see the module docstring).

    ``region``: read only this region (needs a ``.tbi``/``.csi`` index);
    ``maf_min``: skip variants whose minor allele frequency in the panel is below it
    (``0`` keeps everything; monomorphic variants are kept and flagged by
    ``summary_stats`` as for a PLINK panel); ``field``: ``"GT"`` or ``"DS"``.
    ``panel.counts`` holds ``records`` (read), ``snps`` (kept) and ``skipped`` by reason.
    """
    path = Path(path)
    field = field.upper()
    if field not in ("GT", "DS"):
        raise UserError(f"unknown genotype field {field!r}: expected GT or DS")
    if not (0.0 <= float(maf_min) <= 0.5):
        raise UserError(f"--ld-maf-min must be between 0 and 0.5, got {maf_min}")
    try:
        import pysam  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the installation
        raise UserError("reading a VCF/BCF panel needs pysam: pip install pysam", path=path) from None

    vf = _open(path)
    try:
        samples = np.array(list(vf.header.samples), dtype=str)
        n = len(samples)
        if n == 0:
            raise UserError("no samples in the header: expected the genotypes of a reference panel", path=path)
        index = None
        if region is not None:
            records, index = _fetch(vf, path, region)
        else:
            records = vf
        with _quiet_htslib():
            rows, cols, skipped, n_records = _read_records(records, n, field, path)
    finally:
        vf.close()

    g = np.vstack(rows) if rows else np.zeros((0, n), dtype=np.int8)
    bim = {
        "chrom": np.array(cols["chrom"], dtype=np.int64),
        "snp": np.array(cols["snp"], dtype=str),
        "cm": np.full(len(rows), np.nan),
        "bp": np.array(cols["bp"], dtype=np.int64),
        "a1": np.array(cols["a1"], dtype=str),
        "a2": np.array(cols["a2"], dtype=str),
    }
    panel = VcfPanel(path=path, index_path=index, bim=bim, samples=samples, dosages=g, region=region,
                     field=field, maf_min=float(maf_min))
    if maf_min > 0 and len(rows):
        from .ld_filters import maf_filter

        freq, _mono = panel.summary_stats()
        keep = maf_filter(freq, maf_min)
        skipped["maf"] = int((~keep).sum())
        panel.dosages = g[keep]
        panel.bim = {k: v[keep] for k, v in bim.items()}
    if panel.n_snps == 0:
        what = f" in region {region}" if region else ""
        reasons = ", ".join(f"{k} {v}" for k, v in skipped.items() if v)
        raise UserError(
            f"no biallelic SNP{what} ({n_records} records read; skipped: {reasons or 'none'}): "
            "expected a genotype panel with biallelic SNPs",
            path=path,
        )
    panel.counts = {"records": int(n_records), "snps": panel.n_snps, "skipped": skipped}
    return panel
