"""Windows around variants: their starts, fetch segments, gathering values per window."""

from __future__ import annotations

from varfx.errors import UserError

from .common import MAX_BUFFER, MERGE_GAP


# ------------------------------------------------------------------------------ windows


def window_starts(pos, window: int):
    """0-based start of each variant's window: ``pos - 1 - window // 2``."""
    import numpy as np

    return np.asarray(pos, dtype=np.int64) - 1 - int(window) // 2


def _segments(start0, window: int, merge_gap: int, max_len: int):
    """Cut sorted window starts into fetch segments: a new segment where the gap to the
    previous window exceeds ``merge_gap`` or the segment would pass ``max_len`` bp.
    Returns (segment id per variant, segment starts, segment ends) (0-based, half-open)."""
    import numpy as np

    n = len(start0)
    if n == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z
    gap = np.empty(n, dtype=bool)
    gap[0] = True
    gap[1:] = start0[1:] - (start0[:-1] + window) > merge_gap
    group = np.cumsum(gap) - 1
    g_start = start0[gap][group]
    sub = (start0 - g_start) // max(int(max_len), 1)
    new = gap.copy()
    new[1:] |= sub[1:] != sub[:-1]
    seg = np.cumsum(new) - 1
    first = np.flatnonzero(new)
    last = np.r_[first[1:] - 1, n - 1]
    return seg, start0[first], start0[last] + window


def gather_windows(fetch, start0, window: int, *, dtype, merge_gap: int = MERGE_GAP,
                   max_buffer: int = MAX_BUFFER):
    """Per-variant windows ``(n, window)`` from ``fetch(start, end) -> array`` (one
    chromosome, ``start0`` sorted ascending, 0-based; ``fetch`` must handle ranges that
    pass the chromosome ends).  Nearby windows share one fetch."""
    import numpy as np

    n = len(start0)
    out = np.empty((n, window), dtype=dtype)
    if n == 0:
        return out
    max_len = max(window, max_buffer // 4)
    seg, ss, se = _segments(start0, window, merge_gap, max_len)
    lengths = se - ss
    ar = np.arange(window, dtype=np.int64)
    k = 0
    n_seg = len(ss)
    while k < n_seg:
        # a run of segments whose buffer stays under max_buffer bases
        total = np.cumsum(lengths[k:])
        stop = k + max(1, int(np.searchsorted(total, max_buffer, side="right")))
        off = np.zeros(stop - k + 1, dtype=np.int64)
        off[1:] = np.cumsum(lengths[k:stop])
        buf = np.empty(int(off[-1]), dtype=dtype)
        for j in range(k, stop):
            buf[off[j - k]:off[j - k + 1]] = fetch(int(ss[j]), int(se[j]))
        lo = int(np.searchsorted(seg, k, side="left"))
        hi = int(np.searchsorted(seg, stop, side="left"))
        s = seg[lo:hi] - k
        base = off[s] + start0[lo:hi] - ss[seg[lo:hi]]
        out[lo:hi] = buf[base[:, None] + ar[None, :]]
        k = stop
    return out


def by_chromosome(codes, pos):
    """Yield (code, indices) per chromosome, indices sorted by position."""
    import numpy as np

    order = np.lexsort((pos, codes))
    sc = codes[order]
    cuts = np.flatnonzero(np.diff(sc)) + 1
    for idx in np.split(order, cuts):
        if idx.size:
            yield int(codes[idx[0]]), idx


def _check_positions(path, label, pos, length=None, what="chromosome"):
    import numpy as np

    bad = np.flatnonzero(pos < 1)
    if bad.size:
        raise UserError(f"position {int(pos[bad[0]])} on chromosome {label}: expected a 1-based position >= 1", path=path)
    if length is not None:
        bad = np.flatnonzero(pos > length)
        if bad.size:
            raise UserError(
                f"position {int(pos[bad[0]])} is beyond the end of chromosome {label} ({int(length)} bp) in this "
                f"{what}: check the genome build",
                path=path,
            )
