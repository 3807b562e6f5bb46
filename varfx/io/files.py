"""Reading an input file that may be gzip-compressed, with one-line errors.

Kept for the name :func:`read_file_bytes`; the implementation is
:func:`varfx.genome.read_bytes`.
"""

from __future__ import annotations

from ..genome import read_bytes as _read_bytes


def read_file_bytes(path, what: str) -> bytes:
    """The content of a plain or gzip-compressed file (detected from its first bytes).

    ``what`` names the expected file (e.g. ``"a UCSC chain file"``) in the errors for a
    missing file, a directory, or a corrupt or truncated gzip stream.
    """
    return _read_bytes(path, what)
