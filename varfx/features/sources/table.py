"""Per-variant tables: numeric columns matched by SNP id or by position and alleles."""

from __future__ import annotations

import gzip
from pathlib import Path

from varfx.api import Option
from varfx.errors import UserError
from varfx.genome import chrom_code
from varfx.genome import is_missing
from varfx.genome import complement_allele
from varfx.genome import chrom_codes as as_chrom_codes

from .common import _head_lines, _open_text
from .base import BaseFeatureSource


# ------------------------------------------------------------------------------ tables

_SNP_NAMES = ("snp", "rsid", "variant_id", "id")
_CHR_NAMES = ("chr", "chrom", "#chrom", "chromosome", "#chr")
_BP_NAMES = ("bp", "pos", "position")


def _table_layout(header: list[str]) -> dict:
    lower = [h.strip().lower() for h in header]

    def find(names):
        for n in names:
            if n in lower:
                return lower.index(n)
        return None

    return {
        "snp": find(_SNP_NAMES), "chrom": find(_CHR_NAMES), "bp": find(_BP_NAMES),
        "a1": find(("a1",)), "a2": find(("a2",)),
    }


def _pair(a, b) -> tuple[str, str]:
    a, b = str(a).upper(), str(b).upper()
    return (a, b) if a <= b else (b, a)


class TableSource(BaseFeatureSource):
    """Numeric columns of a per-variant table, 0 where a variant is absent."""

    name = "table"
    description = ("per-variant table (TSV with a header: SNP, or CHR BP [A1 A2], and numeric columns, e.g. coding "
                   "scores); 0 where absent")
    options = {
        "columns": Option(str, "", "comma-separated value columns to use (default: every column but the keys)"),
    }

    def __init__(self, **options):
        super().__init__(**options)
        self._tables: dict[str, dict] = {}
        self._headers: dict[str, dict] = {}

    @classmethod
    def sniff(cls, path) -> bool:
        for line in _head_lines(path):
            if not line.strip() or line.startswith("##"):
                continue
            header = line.rstrip("\r\n").split("\t") if "\t" in line else line.split()
            lay = _table_layout(header)
            return lay["snp"] is not None or (lay["chrom"] is not None and lay["bp"] is not None)
        return False

    # -- header --------------------------------------------------------------------------

    def _header(self, path):
        # parsed once per file (prepare, covered and read ask for it for every batch)
        path = Path(path)
        if not path.is_file():
            raise UserError("no such table file", path=path)
        key = str(path.resolve())
        if key not in self._headers:
            self._headers[key] = self._read_header(path)
        return self._headers[key]

    def _read_header(self, path):
        try:
            with _open_text(path) as fh:
                for lineno, line in enumerate(fh, 1):
                    if line.strip() and not line.startswith("##"):
                        return self._parse_header(path, line, lineno)
        except UnicodeDecodeError:
            raise UserError("not a text table (expected UTF-8 text, plain or gzip)", path=path) from None
        except (EOFError, gzip.BadGzipFile, OSError) as exc:
            raise UserError(f"could not read this table ({exc}): a corrupt or truncated gzip file?", path=path) from None
        raise UserError("empty table: expected a header line and rows", path=path)

    def _parse_header(self, path, line, lineno):
        tab = "\t" in line
        header = [h.strip() for h in (line.rstrip("\r\n").split("\t") if tab else line.split())]
        lay = _table_layout(header)
        if lay["chrom"] is not None and lay["bp"] is not None:
            by = "position"
        elif lay["snp"] is not None:
            by = "snp"
        else:
            raise UserError(f"expected a SNP column or CHR and BP columns in the header, found {' '.join(header)}",
                            path=path, line=lineno)
        keys = {i for k, i in lay.items() if i is not None}
        wanted = [c.strip() for c in str(self.config["columns"]).split(",") if c.strip()]
        if wanted:
            value_idx = []
            for c in wanted:
                if c not in header:
                    raise UserError(f"no column {c!r} (option columns=): the header has {' '.join(header)}",
                                    path=path, line=lineno)
                value_idx.append(header.index(c))
        else:
            value_idx = [i for i in range(len(header)) if i not in keys]
        if not value_idx:
            raise UserError("no value columns: expected numeric columns besides SNP/CHR/BP/A1/A2", path=path, line=lineno)
        names = [header[i] for i in value_idx]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise UserError(f"column {dup!r} appears twice in the header", path=path, line=lineno)
        return {"header": header, "layout": lay, "by": by, "value_idx": value_idx, "names": names,
                "line": lineno, "tab": tab}

    def columns(self, path, *, variants=None) -> list[str]:
        return list(self._header(path)["names"])

    # -- lookup --------------------------------------------------------------------------

    def _variant_keys(self, path, meta, chrom, pos, variants):
        """Per variant, the keys it matches in the table (first one found wins)."""
        import numpy as np

        n = len(pos)
        variants = variants or {}
        if meta["by"] == "snp":
            if "snp" not in variants:
                raise UserError("this table is keyed by SNP id: the variants' ids are needed (no CHR/BP columns)",
                                path=path)
            return [(str(s),) for s in np.asarray(variants["snp"]).tolist()], False
        codes = as_chrom_codes(chrom).tolist()
        bp = np.asarray(pos, dtype=np.int64).tolist()
        lay = meta["layout"]
        use_alleles = lay["a1"] is not None and lay["a2"] is not None and "a1" in variants and "a2" in variants
        if not use_alleles:
            return [(c, b) for c, b in zip(codes, bp)], False
        a1 = np.asarray(variants["a1"]).astype(str).tolist()
        a2 = np.asarray(variants["a2"]).astype(str).tolist()
        keys = []
        for c, b, x, y in zip(codes, bp, a1, a2):
            k = (c, b) + _pair(x, y)
            # the other strand of an allele is its reverse complement (ACT -> AGT)
            kc = (c, b) + _pair(complement_allele(x.upper()), complement_allele(y.upper()))
            keys.append((k, kc))
        assert len(keys) == n
        return keys, True

    def _load(self, path, wanted, meta, with_alleles: bool) -> dict:
        """Parse the table keeping the rows whose key is in ``wanted`` (None: every row;
        a key on two rows is then kept in ``self._dups`` and is an error only when looked
        up, as it would have been with ``wanted``)."""
        import numpy as np

        lay, vidx = meta["layout"], meta["value_idx"]
        header = meta["header"]
        ncol = len(header)
        found: dict = {}
        first_line: dict = {}
        dups: dict = {}
        n_rows = 0
        tab = meta["tab"]
        try:
            with _open_text(path) as fh:
                for lineno, line in enumerate(fh, 1):
                    if lineno <= meta["line"] or not line.strip() or line.startswith("#"):
                        continue
                    f = line.rstrip("\r\n").split("\t") if tab else line.split()
                    if len(f) != ncol:
                        raise UserError(f"expected {ncol} fields as in the header, found {len(f)}", path=path, line=lineno)
                    n_rows += 1
                    if meta["by"] == "snp":
                        key = (f[lay["snp"]].strip(),)
                    else:
                        tok = f[lay["bp"]].strip()
                        try:
                            b = int(tok)
                        except ValueError:
                            raise UserError(f"expected an integer position, found {tok!r}", path=path, line=lineno,
                                            column=header[lay["bp"]]) from None
                        c = chrom_code(f[lay["chrom"]])
                        key = (c, b)
                        if with_alleles:
                            key = key + _pair(f[lay["a1"]].strip(), f[lay["a2"]].strip())
                    if wanted is not None and key not in wanted:
                        continue
                    vals = np.empty(len(vidx), dtype=np.float64)
                    for j, i in enumerate(vidx):
                        tok = f[i].strip()
                        if is_missing(tok):
                            vals[j] = 0.0
                            continue
                        try:
                            v = float(tok)
                        except ValueError:
                            raise UserError(
                                f"expected a number (or NA), found {tok!r}; choose numeric columns with the manifest "
                                f"option columns=...", path=path, line=lineno, column=header[i]) from None
                        vals[j] = v if np.isfinite(v) else 0.0
                    if key in found:
                        if wanted is None:
                            dups.setdefault(key, (first_line[key], lineno))
                            continue
                        raise UserError(
                            f"a second row for the same variant (first on line {first_line[key]}): expected one row "
                            "per variant" + ("" if with_alleles or meta["by"] == "snp" else
                                             " (add A1 A2 columns to tell alleles apart)"),
                            path=path, line=lineno)
                    found[key] = vals
                    first_line[key] = lineno
        except UnicodeDecodeError:
            raise UserError("not a text table (expected UTF-8 text, plain or gzip)", path=path) from None
        except (EOFError, gzip.BadGzipFile) as exc:
            raise UserError(f"could not read this table ({exc}): a corrupt or truncated gzip file?", path=path) from None
        self.last_info = {"rows": n_rows, "rows_matched": len(found)}
        self._dups = dups
        return found

    def prepare(self, path, chrom, pos, *, variants=None) -> None:
        """Read the rows of these variants.  The first call keeps only their rows (ingest:
        the dataset's variants, one call); a later call for variants not read yet
        (``score-vcf``: one call per batch of records) reads the whole table, once, so that
        the file is parsed at most twice however many batches follow."""
        meta = self._header(path)
        rkey = str(Path(path).resolve())
        old = self._tables.get(rkey)
        if old is not None and old["wanted"] is None:
            return
        keys, alleles = self._variant_keys(path, meta, chrom, pos, variants)
        wanted = {k for kk in keys for k in (kk if alleles else (kk,))}
        if old is not None and wanted <= old["wanted"]:
            return
        if old is not None:
            wanted = None
        self._dups = {}
        rows = self._load(path, wanted, meta, alleles)
        self._tables[rkey] = {"wanted": wanted, "rows": rows, "meta": meta, "dups": self._dups}

    def covered(self, path, chrom, pos, *, window=0):
        """Which variants this table can give values for (``score-vcf``): a table keyed by
        position covers every variant (a position it lacks is 0, as at ingest); a table
        keyed by SNP id none, since a variant outside the dataset has no id of the
        dataset's to look up (:meth:`coverage_note` says so)."""
        import numpy as np

        by = self._header(path)["by"]
        return np.full(len(pos), by != "snp", dtype=bool)

    def coverage_note(self, path):
        """Why variants are outside this table's coverage (see :meth:`covered`), or None."""
        if self._header(path)["by"] != "snp":
            return None
        return (f"table {path} is keyed by SNP id: a variant outside the dataset has no id to look up there, so "
                "its value is unknown and it gets '.' (add CHR and BP columns to the table to score new variants)")

    def read(self, path, chrom, pos, *, window=256, variants=None):
        import numpy as np

        self.prepare(path, chrom, pos, variants=variants)
        t = self._tables[str(Path(path).resolve())]
        meta = t["meta"]
        keys, alleles = self._variant_keys(path, meta, chrom, pos, variants)
        rows, dups = t["rows"], t.get("dups") or {}
        out = np.zeros((len(pos), len(meta["names"])), dtype=np.float64)
        for i, kk in enumerate(keys):
            if alleles:
                v, k = rows.get(kk[0]), kk[0]
                if v is None:
                    v, k = rows.get(kk[1]), kk[1]
            else:
                v, k = rows.get(kk), kk
            if v is not None:
                if k in dups:
                    first, line = dups[k]
                    raise UserError(
                        f"a second row for the same variant (first on line {first}): expected one row per variant"
                        + ("" if alleles or meta["by"] == "snp" else " (add A1 A2 columns to tell alleles apart)"),
                        path=path, line=line)
                out[i] = v
        return out
