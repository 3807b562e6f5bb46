"""Checks on parsed columns shared by the table and GWAS-VCF readers, and the final :class:`Sumstats`."""

from __future__ import annotations

import numpy as np

from ...errors import UserError
from ...genome import MISSING_TOKENS
from ...genome import chrom_code
from ...genome import unquote

from .formats import Sumstats, _NULL_VALUES


# ----------------------------------------------------------------------------------------
# checks shared by the table and VCF readers


class _Checker:
    """Checks on the parsed columns; messages name the line and column of the first bad value."""

    def __init__(self, path, line_of, token_of, names):
        self.path = path
        self.line_of = line_of  # row index -> line number
        self.token_of = token_of  # (field, row index) -> the text as written
        self.names = names  # field -> column name (for messages)

    def fail(self, i, message, field=None):
        raise UserError(message, path=self.path, line=self.line_of(int(i)),
                        column=self.names.get(field) if field else None)

    def first(self, bad):
        idx = np.flatnonzero(bad)
        return int(idx[0]) if idx.size else None

    def required_number(self, field, values, valid):
        """Nulls (missing tokens) are errors in a required numeric column."""
        i = self.first(~valid)
        if i is not None:
            self.fail(i, f"expected a number, found {self.token_of(field, i)!r}", field)
        return values


def _check_alleles(arr, checker: _Checker, field: str):
    """Upper-cased alleles as an object array; each must be A/C/G/T letters."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(arr, (pa.Array, pa.ChunkedArray)):
        arr = pa.array(arr, type=pa.string())
    up = pc.ascii_upper(pc.ascii_trim_whitespace(arr))
    ok = pc.match_substring_regex(up, "^[ACGT]+$")
    if not pc.all(ok).as_py():
        bad = np.flatnonzero(~np.asarray(ok.to_numpy(zero_copy_only=False), dtype=bool))
        i = int(bad[0])
        checker.fail(i, f"expected an allele made of A, C, G, T (e.g. 'A' or 'ACT'), found "
                        f"{checker.token_of(field, i)!r}", field)
    return np.asarray(up.to_numpy(zero_copy_only=False), dtype=object)


def _chrom_codes(arr) -> np.ndarray:
    """int64 chromosome codes of string tokens: -1 for missing, 0 for other contigs."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(arr, (pa.Array, pa.ChunkedArray)):
        arr = pa.array(arr, type=pa.string())
    uniq_arr = pc.unique(arr)
    uniq = uniq_arr.to_pylist()
    codes = []
    for u in uniq:
        t = unquote(u)
        if t.upper() in MISSING_TOKENS:
            codes.append(-1)
        else:
            c = chrom_code(t)
            codes.append(c if c >= 0 else 0)
    if len(arr) == 0:
        return np.zeros(0, dtype=np.int64)
    idx = pc.index_in(arr, value_set=uniq_arr).to_numpy(zero_copy_only=False)
    return np.asarray(codes, dtype=np.int64)[idx]


def _unquote_column(arr):
    """Text fields without one pair of surrounding double quotes (R's ``write.table``
    quotes every string, whatever the separator): ``"22"`` is chromosome 22, not an
    unknown contig."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(arr, (pa.Array, pa.ChunkedArray)):
        arr = pa.array(arr, type=pa.string())
    if not pc.any(pc.match_substring(arr, '"')).as_py():
        return arr
    return pc.replace_substring_regex(arr, pattern=r'^\s*"(.*)"\s*$', replacement=r"\1")


def _finish(cols: dict, present: dict, checker: _Checker, *, n, path, fmt_name, mode, m) -> Sumstats:
    """Build the Sumstats from parsed columns.

    ``cols[field]``: pyarrow/numpy arrays: strings for snp/chrom/a1/a2, float64 numpy
    arrays (NaN for null) for numeric fields, with ``cols[field + "?"]`` the validity
    mask (False where the token was a missing value).  ``present``: field -> how it
    was read (for ``Sumstats.columns``).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if mode != "comma":  # pyarrow unquotes comma-separated fields itself
        for f in ("snp", "chrom", "a1", "a2"):
            if f in cols:
                cols[f] = _unquote_column(cols[f])
    has_pos = "chrom" in cols and "bp" in cols
    out = Sumstats(path=path, format=fmt_name, has_position=has_pos, columns=present, delimiter=mode)
    out["a1"] = _check_alleles(cols["a1"], checker, "a1")
    out["a2"] = _check_alleles(cols["a2"], checker, "a2")

    out["chrom"] = _chrom_codes(cols["chrom"]) if "chrom" in cols else np.full(m, -1, dtype=np.int64)
    if "bp" in cols:
        bp = cols["bp"]
        bad = np.isfinite(bp) & ((bp < 0) | (bp != np.round(bp)))
        i = checker.first(bad)
        if i is not None:
            checker.fail(i, f"expected a non-negative integer position, found {checker.token_of('bp', i)!r}", "bp")
        out["bp"] = np.where(np.isfinite(bp), bp, -1).astype(np.int64)
    else:
        out["bp"] = np.full(m, -1, dtype=np.int64)

    # ids; CHR:BP where there is no id column, or for a missing id (e.g. "#NA", ".")
    def synth():
        chrom_txt = cols["chrom"]
        if not isinstance(chrom_txt, (pa.Array, pa.ChunkedArray)):
            chrom_txt = pa.array(chrom_txt, pa.string())
        return pc.binary_join_element_wise(pc.ascii_trim_whitespace(chrom_txt),
                                           pa.array(out["bp"]).cast(pa.string()), ":")

    if "snp" in cols:
        snp = cols["snp"]
        if not isinstance(snp, (pa.Array, pa.ChunkedArray)):
            snp = pa.array(snp, pa.string())
        snp = pc.ascii_trim_whitespace(snp)
        if has_pos:
            missing = pc.is_in(snp, value_set=pa.array(_NULL_VALUES + ["NaN", "nan", "NAN"], pa.string()))
            if pc.any(missing).as_py():
                snp = pc.if_else(missing, synth(), snp)
        out["snp"] = np.asarray(snp.to_numpy(zero_copy_only=False), dtype=object)
    else:
        out["snp"] = np.asarray(synth().to_numpy(zero_copy_only=False), dtype=object)
        out.columns = dict(present, snp="CHR:BP")

    if "z" in cols:
        z = checker.required_number("z", cols["z"], cols["z?"])
        i = checker.first(~np.isfinite(z))
        if i is not None:
            checker.fail(i, f"Z is not finite ({checker.token_of('z', i)}): expected a finite number", "z")
    else:
        eff = next(f for f in ("beta", "odds_ratio", "hazard_ratio") if f in cols)
        b = checker.required_number(eff, cols[eff], cols[eff + "?"])
        se = checker.required_number("se", cols["se"], cols["se?"])
        if eff != "beta":
            i = checker.first(~(b > 0))
            if i is not None:
                checker.fail(i, f"expected a positive {checker.names[eff]}, found {checker.token_of(eff, i)}", eff)
            b = np.log(b)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = b / se
        i = checker.first(~np.isfinite(z) | ~(se > 0))
        if i is not None:
            en, sn = checker.names[eff], checker.names["se"]
            what = "BETA/SE" if eff == "beta" else f"ln({en})/SE"
            checker.fail(i, f"Z = {what} is not finite or SE is not positive "
                            f"({en}={checker.token_of(eff, i)}, {sn}={checker.token_of('se', i)})")
    out["z"] = np.asarray(z, dtype=np.float64)

    if n is not None:
        out["n"] = np.full(m, float(n))
        out.n_source = "option"
    elif "n" in cols:
        nn = checker.required_number("n", cols["n"], cols["n?"])
        i = checker.first(~(np.isfinite(nn) & (nn > 0)))
        if i is not None:
            checker.fail(i, f"expected a positive sample size, found {checker.token_of('n', i)}", "n")
        out["n"] = nn
        out.n_source = "column"
    else:
        raise UserError(f"no N column ({_no_n_hint(fmt_name)}) and no --n given: pass the sample size with --n", path=path)

    if "freq" in cols:
        fr = cols["freq"]
        i = checker.first(np.isfinite(fr) & ((fr < 0) | (fr > 1)))
        if i is not None:
            checker.fail(i, f"expected an allele frequency in [0, 1], found {checker.token_of('freq', i)}", "freq")
        out["freq"] = fr
    else:
        out["freq"] = np.full(m, np.nan)
    if "info" in cols:
        info = cols["info"]
        i = checker.first(np.isfinite(info) & (info < 0) | np.isinf(info))
        if i is not None:
            checker.fail(i, f"expected an imputation INFO score >= 0, found {checker.token_of('info', i)}", "info")
        out["info"] = info
    else:
        out["info"] = np.full(m, np.nan)
    return out


def _no_n_hint(fmt_name) -> str:
    return {"bolt": "BOLT-LMM writes none", "gwas-vcf": "no SS FORMAT field"}.get(fmt_name, "")
