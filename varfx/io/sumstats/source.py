"""Reading a summary-statistics file: plain or gzip bytes, the header line and its delimiter."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from ...api import SumstatsFormat
from ...errors import UserError
from ...genome import BOM
from ...genome import GZIP_MAGIC
from ...genome import unquote
from ...genome import read_bytes as _read_bytes
from ...genome import read_text as _read_text


# ----------------------------------------------------------------------------------------
# reading bytes


def _sniffs(fmt: SumstatsFormat, path: Path) -> bool:
    """A format's sniff; one that raises counts as "not this format" (sniffs must not raise)."""
    try:
        return bool(fmt.sniff(path)) if fmt.sniff is not None else False
    except Exception:  # noqa: BLE001 - a third-party sniffer must not break detection
        return False


def _check_path(path: Path) -> None:
    if not path.exists():
        raise UserError("no such file", path=path)
    if path.is_dir():
        raise UserError("is a directory, expected a summary-statistics file", path=path)


def read_bytes(path) -> bytes:
    """The content of a plain or gzip-compressed file (detected from its first bytes)."""
    return _read_bytes(path, "a summary-statistics file")


def read_text(path) -> str:
    """The whole text of a plain or gzip-compressed file (detected from its first bytes),
    without a leading byte-order mark."""
    return _read_text(path, "a text table")


def _head(path: Path, size: int = 64) -> bytes:
    """The first ``size`` bytes of the (decompressed) content, or b"" when unreadable."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(2)
        if magic == GZIP_MAGIC:
            with gzip.open(path, "rb") as fh:
                return fh.read(size)
        with open(path, "rb") as fh:
            return fh.read(size)
    except (OSError, EOFError, zlib.error):
        return b""


def _read_prefix(path: Path, size: int = 1 << 20) -> tuple[bytes, bool, bool]:
    """(the first ``size`` bytes of the decompressed content, whether that is all of it,
    whether the file is gzip).  A gzip error here is left to :func:`read_bytes`."""
    with open(path, "rb") as fh:
        gz = fh.read(2) == GZIP_MAGIC
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as fh:
            prefix = fh.read(size + 1)
    except (OSError, EOFError, zlib.error):
        read_bytes(path)  # raises the corrupt/truncated gzip error
        raise  # pragma: no cover - read_bytes raised
    return prefix[:size], len(prefix) <= size, gz


def is_vcf(path) -> bool:
    """Whether ``path`` starts like a VCF file (``##fileformat=VCF``), gzipped or not."""
    return _head(Path(path)).startswith(b"##fileformat=VCF")


def _find_header(data: bytes, path) -> tuple[int, int, str]:
    """(0-based line index of the header, byte offset of the line after it, header text):
    the first non-blank line not starting with ``##``; (-1, len, "") when there is none."""
    # A UTF-8 byte-order mark (Excel, PowerShell) is not part of the first column's name
    pos, i, size = (len(BOM) if data.startswith(BOM) else 0), 0, len(data)
    while pos < size:
        nl = data.find(b"\n", pos)
        end = size if nl < 0 else nl
        line = data[pos:end]
        if line.strip() and not line.startswith(b"##"):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UserError(f"not a text file (byte {pos + exc.start} is not UTF-8)", path=path) from None
            return i, (size if nl < 0 else nl + 1), text
        if nl < 0:
            break
        pos, i = nl + 1, i + 1
    return -1, size, ""


def _split_header(text: str) -> tuple[list[str], str]:
    """Header names and the delimiter mode: "tab" if the header has a tab, else "comma"
    if it has a comma, else "whitespace"."""
    text = text.rstrip("\r\n")
    if "\t" in text:
        names, mode = [unquote(c) for c in text.strip().split("\t")], "tab"
    elif "," in text:
        names, mode = [unquote(c) for c in text.split(",")], "comma"
    else:
        names, mode = [unquote(c) for c in text.split()], "whitespace"
    if names and names[0].startswith("#"):
        names[0] = names[0].lstrip("#")
    return names, mode
