"""Reading an input file that may be gzip-compressed, with one-line errors."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from ..errors import UserError


def read_file_bytes(path, what: str) -> bytes:
    """The content of a plain or gzip-compressed file (detected from its first bytes).

    ``what`` names the expected file (e.g. ``"a UCSC chain file"``) in the errors for a
    missing file, a directory, or a corrupt or truncated gzip stream.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"no such file (expected {what})", path=path)
    if path.is_dir():
        raise UserError(f"is a directory, expected {what}", path=path)
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise UserError(f"corrupt or truncated gzip file ({exc}); expected {what}", path=path) from None
    return data
