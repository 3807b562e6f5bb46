"""GWAS-VCF summary statistics (read with pysam)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ...errors import UserError
from ...genome import GZIP_MAGIC

from .formats import Sumstats
from .source import _check_path
from .checks import _Checker, _finish
from .reader import _check_n


# ----------------------------------------------------------------------------------------
# GWAS-VCF (pysam)


def read_gwas_vcf(path, n=None) -> Sumstats:
    """Read a GWAS-VCF file (MRC IEU GWAS-VCF specification) with pysam.

    One sample column (one study).  FORMAT fields: ``ES`` (effect of ALT) and ``SE``, or
    ``EZ`` (Z of ALT); ``AF`` (ALT frequency), ``SS`` (sample size), ``SI`` (INFO).
    ``ID`` is the variant id, ``REF``/``ALT`` the alleles with ALT the effect allele: a1 =
    ALT, a2 = REF.  A record with several ALT alleles gives one row per ALT (then
    reported as multi-allelic by :func:`filter_sumstats`).
    """
    path = Path(path)
    n = _check_n(n)
    _check_path(path)
    with open(path, "rb") as fh:
        head = fh.read(18)
    if head[:2] == b"\x1f\x8b" and not (len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC"):
        # plain gzip, not BGZF: htslib cannot read it; decompress to a temporary file
        import shutil
        import tempfile

        with tempfile.TemporaryDirectory(prefix="varfx-vcf-") as d:
            tmp = Path(d) / "input.vcf"
            try:
                with gzip.open(path, "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 16 << 20)
            except (OSError, EOFError, zlib.error) as exc:
                raise UserError(f"corrupt or truncated gzip file ({exc})", path=path) from None
            return _read_vcf_file(tmp, path, n)
    return _read_vcf_file(path, path, n)


def _vcf_header_lines(file) -> int:
    """The 1-based line number of the ``#CHROM`` line (0 when there is none)."""
    with open(file, "rb") as fh:
        gz = fh.read(2) == GZIP_MAGIC
    try:
        with (gzip.open(file, "rb") if gz else open(file, "rb")) as fh:
            for i, line in enumerate(fh, 1):
                if line.startswith(b"#CHROM"):
                    return i
                if not line.startswith(b"#"):
                    break
    except (OSError, EOFError, zlib.error):
        pass
    return 0


def _read_vcf_file(file, path, n) -> Sumstats:
    """Read ``file`` (plain or BGZF); messages name ``path``, the file given."""
    import pysam

    old = pysam.set_verbosity(0)  # htslib warnings would break the one-line error contract
    try:
        n_header = _vcf_header_lines(file)
        if n_header == 0:
            raise UserError("no #CHROM header line: expected a VCF header", path=path)
        try:
            vf = pysam.VariantFile(str(file))
        except (OSError, ValueError, NotImplementedError) as exc:
            raise UserError(f"not a readable VCF file ({exc})", path=path) from None
        with vf:
            return _read_vcf_records(vf, path, n, n_header)
    finally:
        pysam.set_verbosity(old)


def _round_sig(x: np.ndarray, digits: int) -> np.ndarray:
    """``x`` (finite, non-zero) rounded to ``digits`` significant decimal digits."""
    e = (digits - 1) - np.floor(np.log10(np.abs(x))).astype(np.int64)
    p = 10.0 ** np.abs(e)
    return np.where(e >= 0, np.round(x * p) / p, np.round(x / p) * p)


def _float32_decimal(values) -> np.ndarray:
    """float64 values of float32 numbers through their shortest decimal form.

    htslib stores VCF floats as float32 (relative spacing 1.2e-7), so the text
    ``-0.000988763`` is read as -0.00098876299...; this returns the decimal with the
    fewest significant digits (6 to 9) that rounds to the same float32, as
    ``repr(numpy.float32)`` does: a value written with up to 6 significant digits comes
    back exactly as written.  Vectorised."""
    x32 = np.asarray(values, dtype=np.float32)
    x = x32.astype(np.float64)
    out = x.copy()
    todo = np.flatnonzero(np.isfinite(x) & (x != 0))
    for digits in (6, 7, 8, 9):
        if todo.size == 0:
            break
        cand = _round_sig(x[todo], digits)
        with np.errstate(over="ignore"):
            ok = cand.astype(np.float32) == x32[todo]
        out[todo[ok]] = cand[ok]
        todo = todo[~ok]
    return out


def _read_vcf_records(vf, path, n, n_header) -> Sumstats:
    hdr = vf.header
    samples = list(hdr.samples)
    if len(samples) != 1:
        raise UserError(f"expected one sample column in a GWAS-VCF (one study), found {len(samples)}",
                        path=path, line=n_header)
    fmts = set(hdr.formats.keys())
    if "EZ" in fmts:
        eff_fields = ("EZ",)
    elif "ES" in fmts and "SE" in fmts:
        eff_fields = ("ES", "SE")
    else:
        miss = "SE" if "ES" in fmts else "ES"
        raise UserError(f"no ##FORMAT=<ID={miss},...> in the header: a GWAS-VCF needs FORMAT fields ES and SE (or EZ)",
                        path=path, line=n_header)
    use_ss = n is None and "SS" in fmts
    if n is None and not use_ss:
        raise UserError("no SS FORMAT field (sample size) and no --n given: pass the sample size with --n", path=path)
    has_af = "AF" in fmts
    has_si = "SI" in fmts
    wanted = [k for k in ("EZ", "ES", "SE", "AF", "SS", "SI")
              if k in eff_fields or (k == "AF" and has_af) or (k == "SS" and use_ss) or (k == "SI" and has_si)]
    required = set(eff_fields) | ({"SS"} if use_ss else set())
    snp, chrom, bp, a1, a2, line_no = [], [], [], [], [], []
    vals = {key: [] for key in wanted}
    columns = [(key, vals[key], key in required) for key in wanted]
    nan = float("nan")

    def bad_value(rec, key, line):
        if key not in rec.format.keys():
            raise UserError(f"FORMAT has no {key} field (FORMAT is {':'.join(rec.format.keys())}): expected the "
                            f"FORMAT fields {', '.join(k for k in wanted if k in required)}", path=path, line=line,
                            column="FORMAT")
        raise UserError(f"FORMAT field {key} is missing ('.'): expected a number", path=path, line=line, column=key)

    it = iter(vf)
    line = n_header
    while True:
        line += 1
        try:
            rec = next(it)
        except StopIteration:
            break
        except (OSError, ValueError, NotImplementedError) as exc:
            raise UserError(f"not a valid VCF record ({exc})", path=path, line=line) from None
        alts = rec.alts
        if not alts:
            raise UserError("no ALT allele: expected the effect allele in ALT", path=path, line=line, column="ALT")
        sample = rec.samples[0]
        rid, rchrom, rpos, ref = rec.id, rec.chrom, rec.pos, rec.ref
        na = len(alts)
        for key, out, req in columns:
            v = sample.get(key)  # a tuple (Number=A) or a number; None when absent
            if v.__class__ is not tuple:
                v = (v,) * na
            elif len(v) != na:
                v = (v + (None,) * na)[:na] if len(v) < na else v[:na]
            for x in v:
                if x is None:
                    if req:
                        bad_value(rec, key, line)
                    out.append(nan)
                else:
                    out.append(x)
        for alt in alts:
            snp.append(rid if rid else f"{rchrom}:{rpos}")
            chrom.append(rchrom)
            bp.append(rpos)
            a1.append(alt)
            a2.append(ref)
            line_no.append(line)
    m = len(snp)
    if m == 0:
        raise UserError("no variant records after the header", path=path, line=n_header)

    def token_of(field, i):
        key = {"z": "EZ", "beta": "ES", "se": "SE", "freq": "AF", "n": "SS", "info": "SI",
               "a1": "ALT", "a2": "REF", "bp": "POS"}[field]
        if key == "ALT":
            return a1[i]
        if key == "REF":
            return a2[i]
        if key == "POS":
            return str(bp[i])
        return repr(float(vals[key][i]))

    for key in wanted:  # htslib stores VCF floats as float32: back to the decimal written
        vals[key] = _float32_decimal(vals[key])
    names = {"z": "EZ", "beta": "ES", "se": "SE", "freq": "AF", "n": "SS", "info": "SI", "a1": "ALT",
             "a2": "REF", "bp": "POS", "chrom": "CHROM"}
    checker = _Checker(path, lambda i: line_no[i], token_of, names)
    cols: dict = {"snp": snp, "chrom": chrom, "bp": np.asarray(bp, dtype=np.float64), "a1": a1, "a2": a2}
    present = {"snp": "ID", "chrom": "CHROM", "bp": "POS", "a1": "ALT", "a2": "REF"}
    if "EZ" in eff_fields:
        cols["z"] = vals["EZ"]
        cols["z?"] = np.ones(m, dtype=bool)
        present["z"] = "EZ"
    else:
        for f, key in (("beta", "ES"), ("se", "SE")):
            cols[f] = vals[key]
            cols[f + "?"] = np.ones(m, dtype=bool)
        present["z"] = "ES/SE"
    if use_ss:
        cols["n"] = vals["SS"]
        cols["n?"] = np.ones(m, dtype=bool)
        present["n"] = "SS"
    if has_af:
        cols["freq"] = vals["AF"]
        present["freq"] = "AF"
    if has_si:
        cols["info"] = vals["SI"]
        present["info"] = "SI"
    return _finish(cols, present, checker, n=n, path=path, fmt_name="gwas-vcf", mode="vcf", m=m)
