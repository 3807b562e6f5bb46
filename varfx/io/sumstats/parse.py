"""The table parser (pyarrow) and, for a table it refuses, the line and column of the problem."""

from __future__ import annotations

import numpy as np

from ...errors import UserError

from .formats import _NULL_VALUES


# ----------------------------------------------------------------------------------------
# the table parser (pyarrow) and error locator

_DELIM = {"tab": "\t", "comma": ",", "whitespace": " ", "normalised": "\t"}
_BLANK = np.zeros(256, dtype=bool)
_BLANK[[9, 11, 12, 13, 32]] = True  # \t \v \f \r and space


def _normalise_whitespace(body, block: int = 64 << 20) -> bytes:
    """The fields of whitespace splitting (``str.split()`` of each line), tab-separated:
    runs of blanks become one tab, blanks at the start or end of a line go.  Vectorised
    (numpy) over blocks of whole lines, so memory stays bounded on large files."""
    raw = np.frombuffer(body, dtype=np.uint8)
    out = []
    pos = 0
    while pos < raw.size:
        end = min(raw.size, pos + block)
        if end < raw.size:  # end the block after a newline
            nl = np.flatnonzero(raw[end - 1 : min(raw.size, end + (1 << 20))] == 10)
            end = end + int(nl[0]) if nl.size else raw.size
        seg = raw[pos:end]
        ws = _BLANK[seg]
        brk = ws | (seg == 10)  # a blank, or a line end
        first = ws.copy()
        first[1:] &= ~ws[:-1]
        last = ws.copy()
        last[:-1] &= ~ws[1:]
        starts = np.flatnonzero(first)
        ends = np.flatnonzero(last) + 1  # runs never cross a newline, so they pair up
        before = starts > 0
        before[before] = ~brk[starts[before] - 1]
        after = ends < seg.size
        after[after] = ~brk[ends[after]]
        interior = starts[before & after]
        keep = ~ws
        keep[interior] = True
        vals = seg.copy()
        vals[interior] = 9
        out.append(vals[keep].tobytes())
        pos = end
    return b"".join(out)


def _first_non_utf8(body, block: int = 64 << 20) -> int | None:
    """Offset of the first byte of ``body`` that is not UTF-8 (checked block by block)."""
    import codecs

    dec = codecs.getincrementaldecoder("utf-8")()
    mv = memoryview(body)
    for pos in range(0, len(mv), block):
        chunk = bytes(mv[pos : pos + block])
        try:
            dec.decode(chunk, final=pos + block >= len(mv))
        except UnicodeDecodeError as exc:
            return max(0, pos + exc.start - len(dec.getstate()[0]))
    return None


class _Locator:
    """From a data row index back to its line number and its text (for messages)."""

    def __init__(self, body, first_line: int, mode: str, nrows: int):
        self._body = body  # bytes-like, the text after the header as parsed, or a function giving it
        self.first_line = first_line  # 1-based line number of the first line after the header
        self.mode = mode
        self.nrows = nrows
        self._rows = None  # (starts, ends) of the non-empty lines, computed on demand

    @property
    def body(self):
        if callable(self._body):
            self._body = self._body()
        return self._body

    def _row_spans(self):
        if self._rows is None:
            raw = np.frombuffer(self.body, dtype=np.uint8)
            nl = np.flatnonzero(raw == 10)
            starts = np.concatenate(([0], nl + 1))
            ends = np.concatenate((nl, [raw.size]))
            keep = ends > starts
            # a line holding only "\r" is empty too (CRLF files)
            cr = keep & (ends - starts == 1)
            if cr.any():
                keep[cr] = raw[starts[cr]] != 13
            self._line_index = np.flatnonzero(keep)
            self._rows = (starts[keep], ends[keep])
        return self._rows

    def line(self, i: int) -> int:
        starts, _ = self._row_spans()
        if i >= len(starts):  # pragma: no cover - defensive
            return self.first_line + i
        return self.first_line + int(self._line_index[i])

    def fields(self, i: int) -> list[str]:
        starts, ends = self._row_spans()
        text = bytes(self.body[int(starts[i]) : int(ends[i])]).decode("utf-8", errors="replace").rstrip("\r")
        if self.mode == "comma":
            import csv

            return next(csv.reader([text]))
        if self.mode in ("tab", "normalised"):
            return text.split("\t")
        return text.split()

    def token(self, i: int, j: int) -> str:
        f = self.fields(i)
        return f[j].strip() if j < len(f) else ""


def _arrow_read(body, mode: str, ncol: int, want: dict[int, str]):
    import pyarrow as pa
    import pyarrow.csv as pcsv

    names = [f"c{j}" for j in range(ncol)]
    types = {f"c{j}": (pa.float64() if kind == "float" else pa.string()) for j, kind in want.items()}
    return pcsv.read_csv(
        body if isinstance(body, pa.NativeFile) else pa.py_buffer(body),
        read_options=pcsv.ReadOptions(column_names=names, block_size=8 << 20),
        parse_options=pcsv.ParseOptions(
            delimiter=_DELIM[mode],
            quote_char='"' if mode == "comma" else False,
            ignore_empty_lines=True,
        ),
        convert_options=pcsv.ConvertOptions(
            include_columns=[f"c{j}" for j in sorted(want)],
            column_types=types,
            null_values=_NULL_VALUES,
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _first_bad_float(col) -> int | None:
    """Index of the first string of ``col`` (a ChunkedArray) that is neither a number
    nor a missing token, found chunk by chunk and then by bisection with pyarrow's own
    parser (so "bad" means exactly what the fast path rejected)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    nulls = pa.array(_NULL_VALUES, type=pa.string())

    def ok(arr) -> bool:
        arr = pc.utf8_trim_whitespace(arr)
        arr = pc.if_else(pc.is_in(arr, value_set=nulls), pa.scalar(None, pa.string()), arr)
        try:
            pc.cast(arr, pa.float64())
            return True
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return False

    offset = 0
    for chunk in col.chunks:
        if not ok(chunk):
            lo, hi = 0, len(chunk)  # the first bad element is in [lo, hi)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if ok(chunk.slice(lo, mid - lo)):
                    lo = mid
                else:
                    hi = mid
            return offset + lo
        offset += len(chunk)
    return None


def _diagnose(path, data, body_start: int, body, mode: str, ncol: int, want: dict[int, str],
              names: dict[int, str], first_line: int, exc, header_mode: str) -> UserError:
    """The UserError for a table that pyarrow refused: non-UTF-8 bytes, a line with a
    different number of fields, or a value that is not a number."""
    import pyarrow as pa

    bad = _first_non_utf8(memoryview(data)[body_start:])
    if bad is not None:
        return UserError(f"not a text file (byte {body_start + bad} is not UTF-8)", path=path)
    loc = _Locator(body, first_line, mode, 0)
    starts, ends = loc._row_spans()
    raw = np.frombuffer(body, dtype=np.uint8)
    delim = ord(_DELIM[mode])
    quoted = mode == "comma" and b'"' in bytes(body[: min(len(body), 1 << 20)])
    step = 1 << 20  # lines per block: bounded memory on a large file
    for b0 in range(0, starts.size, step):
        s0, e0 = starts[b0 : b0 + step], ends[b0 : b0 + step]
        if quoted:
            counts = np.array([len(loc.fields(i)) for i in range(b0, b0 + s0.size)])
        else:
            seg = raw[s0[0] : e0[-1]]
            cum = np.concatenate(([0], np.cumsum(seg == delim, dtype=np.int32)))
            counts = cum[e0 - s0[0]] - cum[s0 - s0[0]] + 1
        bad = np.flatnonzero(counts != ncol)
        if bad.size:
            i, found = b0 + int(bad[0]), int(counts[bad[0]])
            hint = ""
            if found == 1 and any(d in loc.fields(i)[0] for d in ",;|\t "):
                hint = f" (is the delimiter right? the header is {_mode_words(header_mode)})"
            return UserError(f"expected {ncol} fields (as in the header), found {found}{hint}",
                             path=path, line=loc.line(i))
    # a value that is not a number: read each numeric column as text and find it
    for j, kind in sorted(want.items()):
        if kind != "float":
            continue
        try:
            col = _arrow_read(body, mode, ncol, {j: "str"}).column(0)
        except pa.ArrowInvalid:  # pragma: no cover - the parse itself succeeded above
            continue
        i = _first_bad_float(col)
        if i is not None:
            return UserError(f"expected a number, found {col[i].as_py()!r}", path=path, line=loc.line(i), column=names[j])
    return UserError(f"could not parse the table ({str(exc).splitlines()[0]})", path=path)


def _mode_words(mode: str) -> str:
    return {"tab": "tab-separated", "comma": "comma-separated", "whitespace": "whitespace-separated"}[mode]
