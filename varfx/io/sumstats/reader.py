"""The public reader, :func:`read_sumstats`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import UserError

from .formats import COLUMN_OPTIONS, Sumstats, _NUMERIC, registered_formats
from .source import _check_path, _find_header, _read_prefix, _sniffs, _split_header, read_bytes
from .detect import _apply_overrides, _find_format, _format_columns
from .parse import _Locator, _arrow_read, _diagnose, _normalise_whitespace
from .checks import _Checker, _finish


# ----------------------------------------------------------------------------------------
# the public reader


def _check_n(n):
    if n is None:
        return None
    try:
        v = float(n)
    except (TypeError, ValueError):
        raise UserError(f"option --n: expected a positive number, got {n!r}") from None
    if not (np.isfinite(v) and v > 0):
        raise UserError(f"option --n: expected a positive number, got {n!r}")
    return v


def read_sumstats(path, n=None, *, columns: dict[str, str] | None = None, format: str | None = None) -> Sumstats:
    """Read summary statistics (see :data:`FORMATS`; plain or gzipped; or GWAS-VCF).

    ``n`` is the sample size for every variant; it is required when the file has no N
    column and, when given, replaces that column.  ``columns`` maps canonical fields
    to header names (e.g. ``{"z": "ZSCORE"}``): a mapped field is read from that
    column whatever the format.  ``format`` forces a format by name (``ldsc``,
    ``ukb``, ``fastGWA``, ``bolt``, ``gwas-ssf``, ``gwas-vcf``, ``custom``) instead of
    detecting it.  Raises :class:`UserError` on bad input, naming the file, line and
    column.
    """
    path = Path(path)
    n = _check_n(n)
    columns = {f: c for f, c in (columns or {}).items() if c is not None}
    _, file_formats, by_name = registered_formats()
    if format is not None and format.lower() not in by_name:
        raise UserError(f"option --sumstats-format: unknown format {format!r}; expected one of "
                        f"{', '.join(f.name for f in by_name.values())}")
    _check_path(path)
    forced_fmt = by_name[format.lower()] if format is not None else None
    reader_fmt = forced_fmt if forced_fmt is not None and forced_fmt.reader is not None else None
    if forced_fmt is None:
        reader_fmt = next((f for f in file_formats if _sniffs(f, path)), None)
    if reader_fmt is not None:
        if columns:
            opts = ", ".join(COLUMN_OPTIONS.get(f, f) for f in columns)
            what = ("a GWAS-VCF file (its fields are ES, SE, EZ, AF, SS, SI)" if reader_fmt.name == "gwas-vcf"
                    else f"the {reader_fmt.name} format (not a table)")
            raise UserError(f"{opts}: column mapping does not apply to {what}", path=path)
        return reader_fmt.reader(path, n)

    prefix, complete, gz = _read_prefix(path)
    data = None
    h, body_start, header_text = _find_header(prefix, path)
    if not complete and (h < 0 or body_start >= len(prefix)):  # the header is not in the first MiB
        data = read_bytes(path)
        h, body_start, header_text = _find_header(data, path)
    if h < 0:
        if prefix.startswith(b"##fileformat=VCF"):
            raise UserError("VCF file with no #CHROM header line", path=path)
        raise UserError("empty file: expected a header line and one line per variant", path=path)
    header, mode = _split_header(header_text)
    header_upper = [c.upper() for c in header]
    mapped = set()
    if columns:
        header_upper = _apply_overrides(header_upper, columns, path, line=h + 1)
        mapped = set(columns)
    forced = format if forced_fmt is not None else None
    fmt = _find_format(header_upper, path, mapped=mapped, forced=forced, line=h + 1)

    # columns of each field
    fcols = _format_columns(fmt, mapped)
    dup = {c for c in header_upper if header_upper.count(c) > 1}
    col_index: dict[str, int] = {}
    for f, names in fcols.items():
        for name in names:
            if name in header_upper:
                if name in dup:
                    raise UserError(f"column {name} appears more than once in the header", path=path, line=h + 1)
                col_index[f] = header_upper.index(name)
                break
    col_index.pop("ref", None)
    # the Z source: Z, else BETA/SE (or ln OR / SE, ln HR / SE); other effect columns unused
    if "z" in col_index:
        for f in ("beta", "se", "odds_ratio", "hazard_ratio"):
            col_index.pop(f, None)
    else:
        eff = next((f for f in ("beta", "odds_ratio", "hazard_ratio") if f in col_index), None)
        for f in ("beta", "odds_ratio", "hazard_ratio"):
            if f != eff:
                col_index.pop(f, None)
    if n is not None:
        col_index.pop("n", None)
    if "snp" not in col_index and not ("chrom" in col_index and "bp" in col_index):
        raise UserError(f"missing required column {' or '.join(fcols.get('snp', ('SNP',)))} (or CHR and BP columns); "
                        f"header is: {' '.join(header_upper)}", path=path)
    names = {f: header[j] for f, j in col_index.items()}
    ncol = len(header)
    want = {j: ("float" if f in _NUMERIC else "str") for f, j in col_index.items()}

    # parse
    import pyarrow as pa

    first_line = h + 2
    col_names = {j: names[f] for f, j in col_index.items()}
    table = None
    fast_exc = None
    if data is None:
        # fast path: pyarrow reads the file as a stream (gzip is decompressed on its I/O
        # thread while the parser threads work); the bytes are read again only for a message
        try:
            with pa.input_stream(str(path), compression="gzip" if gz else None) as stream:
                if len(stream.read(body_start)) == body_start:
                    table = _arrow_read(stream, mode, ncol, want)
        except (pa.ArrowInvalid, OSError, EOFError) as exc:
            fast_exc = exc
        if table is not None and table.num_rows == 0:
            table = None
        parsed_mode = mode

        def parsed_body():
            return memoryview(read_bytes(path))[body_start:]
    if table is None:
        # slow path: all the bytes (a corrupt gzip is reported here); as written, then
        # as whitespace-split fields; else find the line and column of the problem
        data = read_bytes(path) if data is None else data
        body = memoryview(data)[body_start:]
        if not bytes(body[: 1 << 16]).strip() and not bytes(body).strip():
            raise UserError("no data rows after the header", path=path, line=h + 1)
        exc = fast_exc if isinstance(fast_exc, pa.ArrowInvalid) else None
        if exc is None:
            try:
                table = _arrow_read(body, mode, ncol, want)
                parsed_mode, norm = mode, body
            except pa.ArrowInvalid as e:
                exc = e
        if table is None:
            if mode == "comma" or "conversion error" in str(exc).lower():
                raise _diagnose(path, data, body_start, body, mode, ncol, want, col_names, first_line, exc,
                                mode) from None
            norm = _normalise_whitespace(body)
            try:
                table = _arrow_read(norm, "normalised", ncol, want)
            except pa.ArrowInvalid as exc2:
                raise _diagnose(path, data, body_start, norm, "normalised", ncol, want, col_names, first_line,
                                exc2, mode) from None
            parsed_mode = "normalised"

        def parsed_body(norm=norm):
            return norm
    m = table.num_rows
    if m == 0:
        raise UserError("no data rows after the header", path=path, line=h + 1)
    loc = _Locator(parsed_body, first_line, parsed_mode, m)

    def token_of(field, i):
        return loc.token(i, col_index[field])

    checker = _Checker(path, loc.line, token_of, names)

    cols: dict = {}
    for f, j in col_index.items():
        arr = table.column(f"c{j}")
        if want[j] == "float":
            valid = arr.is_valid().to_numpy(zero_copy_only=False) if arr.null_count else np.ones(m, dtype=bool)
            cols[f] = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)
            if arr.null_count:
                cols[f][~valid] = np.nan
            cols[f + "?"] = valid
        else:
            cols[f] = arr
    present = {f: names[f] for f in col_index}
    if "z" not in col_index:
        eff = next(f for f in ("beta", "odds_ratio", "hazard_ratio") if f in col_index)
        present["z"] = f"{names[eff]}/{names['se']}" if eff == "beta" else f"ln({names[eff]})/{names['se']}"
    del table
    return _finish(cols, present, checker, n=n, path=path, fmt_name=fmt.name, mode=mode, m=m)
