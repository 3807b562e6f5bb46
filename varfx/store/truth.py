"""Reading a simulation's truth file: a TSV with a ``SNP`` column and one value column
(``F`` for a prior's variance, ``causal`` for fine-mapping), aligned to a dataset's
variants.  ``varfx evaluate --truth`` reads it through :func:`read_truth_column`."""

from __future__ import annotations

import csv

import numpy as np

from ..errors import UserError


def read_truth_column(path, snps, column: str, parse, want: str, fill, dtype) -> np.ndarray:
    """Per dataset variant (``snps``, in dataset order) the value of ``column`` in the
    TSV at ``path``; ``fill`` where the file does not name the variant.

    ``parse(text)`` returns the value or raises ValueError; every row must parse (a
    truth file with a bad value is a one-line error naming its line, ``want`` saying
    what was expected)."""
    pos = {s: i for i, s in enumerate(snps)}
    out = np.full(len(snps), fill, dtype=dtype)
    expected = f"a TSV with columns SNP and {column}"
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter="\t")
            header = next(reader, None)
            if header is None:
                raise UserError(f"empty truth file; expected {expected}", path=path)
            cols = {c.strip(): i for i, c in enumerate(header)}
            for col in ("SNP", column):
                if col not in cols:
                    raise UserError(f"missing column {col!r}; expected {expected} (header: {' '.join(header)})",
                                    path=path)
            for lineno, row in enumerate(reader, start=2):
                if not row:
                    continue
                try:
                    snp, text = row[cols["SNP"]], row[cols[column]]
                except IndexError:
                    raise UserError(f"{len(row)} columns, the header has {len(header)}", path=path,
                                    line=lineno) from None
                try:
                    value = parse(text)
                except ValueError:
                    raise UserError(f"expected {want} in column {column!r}, got {text!r}", path=path,
                                    line=lineno) from None
                i = pos.get(snp)
                if i is not None:
                    out[i] = value
    except UnicodeDecodeError as exc:
        raise UserError(f"not a UTF-8 text file ({exc.reason} at byte {exc.start}); expected {expected}",
                        path=path) from None
    except csv.Error as exc:
        raise UserError(f"not a readable TSV ({exc}); expected {expected}", path=path) from None
    return out


def truth_columns(path) -> str:
    """``"causal"`` when a truth TSV has a ``causal`` column and no ``F`` (a fine-mapping
    truth), else ``"F"`` (reading it then names any problem)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh, delimiter="\t"), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return "F"
    cols = {c.strip() for c in header}
    return "causal" if "causal" in cols and "F" not in cols else "F"
