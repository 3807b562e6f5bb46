"""Correlations among a dataset's variants, from the LD data that ingest stored.

:func:`open_ld` takes an open ``h5py.File`` of ``dataset.h5`` and returns an object with
``kind``, ``n_ref`` and ``correlation(idx, chrom, center_bp)``: the dense float64
correlation matrix among the (sorted) variant indices ``idx``.

- ``plink``: the dosages of those variants are standardised (missing genotypes set to
  the variant's mean, population standard deviation, so the diagonal is exactly 1) and
  ``R = X^T X / n_people``.
- ``ukbb``: the region on ``chrom`` whose centre is nearest ``center_bp`` among the
  regions containing ``center_bp`` (the region that centres the window; when no region
  contains it, the nearest centre on the chromosome).  Variants of ``idx`` that are not
  in that region get zero correlation with every other variant and 1 on the diagonal.

Both are in the orientation of the dataset's ``a1`` alleles (no sign changes needed).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np


def open_ld(h5file):
    """The LD view of an open ``dataset.h5`` (``PlinkLD`` or ``UkbbLD``)."""
    from ..errors import UserError

    if "ld" not in h5file:
        raise UserError("dataset has no /ld group (was it written by varfx ingest?)", path=h5file.filename)
    kind = h5file["ld"].attrs.get("kind")
    if isinstance(kind, bytes):
        kind = kind.decode()
    if kind == "plink":
        return PlinkLD(h5file)
    if kind == "ukbb":
        return UkbbLD(h5file)
    raise UserError(f"unknown LD kind {kind!r} in /ld", path=h5file.filename)


def _as_idx(idx) -> np.ndarray:
    idx = np.asarray(idx, dtype=np.int64).ravel()
    if idx.size > 1 and np.any(np.diff(idx) <= 0):
        raise ValueError("idx must be strictly increasing variant indices")
    return idx


class PlinkLD:
    """LD computed on demand from the genotypes stored in ``/ld/genotypes``."""

    kind = "plink"

    def __init__(self, h5file):
        self._g = h5file["ld/genotypes"]
        self.n_variants, self.n_people = self._g.shape

    @property
    def n_ref(self) -> int:
        return int(self.n_people)

    def dosages(self, idx) -> np.ndarray:
        """int8 dosages (len(idx) x n_people) of the dataset's a1 alleles, -1 missing."""
        idx = _as_idx(idx)
        if idx.size == 0:
            return np.zeros((0, self.n_people), dtype=np.int8)
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        block = self._g[lo:hi]
        return block[idx - lo]

    def standardized(self, idx) -> np.ndarray:
        """Standardised dosages X (len(idx) x n_people), mean-imputed, population sd 1."""
        g = self.dosages(idx).astype(np.float64)
        miss = g < 0
        g[miss] = 0.0
        cnt = (~miss).sum(axis=1)
        mean = np.divide(g.sum(axis=1), cnt, out=np.zeros(len(g)), where=cnt > 0)
        x = g - mean[:, None]
        x[miss] = 0.0
        sd = np.sqrt((x * x).mean(axis=1))
        ok = sd > 0
        x[ok] /= sd[ok, None]
        x[~ok] = 0.0
        return x

    def correlation(self, idx, chrom=None, center_bp=None) -> np.ndarray:
        x = self.standardized(idx)
        r = x @ x.T / self.n_people
        np.fill_diagonal(r, 1.0)
        return r


class UkbbLD:
    """LD from the per-region sparse triangles stored under ``/ld/regions``."""

    kind = "ukbb"

    def __init__(self, h5file, cache_size: int = 2):
        self._grp = h5file["ld/regions"]
        self._n_ref = int(h5file.attrs.get("n_ref", 0))
        names = list(self._grp.keys())
        self.regions = []
        for name in names:
            a = self._grp[name].attrs
            self.regions.append((name, int(a["chrom"]), int(a["start"]), int(a["end"])))
        self._cache: OrderedDict = OrderedDict()
        self._cache_size = cache_size

    @property
    def n_ref(self) -> int:
        return self._n_ref

    def pick_region(self, chrom: int, center_bp: float):
        """The name of the region used for a window centred at ``center_bp`` (or None)."""
        cands = [r for r in self.regions if r[1] == int(chrom)]
        if not cands:
            return None
        inside = [r for r in cands if r[2] <= center_bp < r[3]]
        pool = inside or cands
        best = min(pool, key=lambda r: (abs((r[2] + r[3]) / 2.0 - center_bp), r[2]))
        return best[0]

    def _load(self, name):
        if name in self._cache:
            self._cache.move_to_end(name)
            return self._cache[name]
        import scipy.sparse as sp

        g = self._grp[name]
        ridx = g["idx"][()]
        k = len(ridx)
        low = sp.csr_matrix((g["data"][()], g["indices"][()], g["indptr"][()]), shape=(k, k))
        self._cache[name] = (ridx, low)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return ridx, low

    def region_index(self, name) -> np.ndarray:
        return self._grp[name]["idx"][()]

    def correlation(self, idx, chrom, center_bp) -> np.ndarray:
        idx = _as_idx(idx)
        out = np.eye(len(idx))
        name = self.pick_region(chrom, center_bp)
        if name is None or idx.size == 0:
            return out
        ridx, low = self._load(name)
        if len(ridx) == 0:
            return out
        pos = np.searchsorted(ridx, idx)
        pos_c = np.minimum(pos, len(ridx) - 1)
        present = ridx[pos_c] == idx
        sel = pos_c[present]
        sub = low[sel][:, sel].toarray().astype(np.float64)
        r = sub + sub.T
        np.fill_diagonal(r, 1.0)
        where = np.flatnonzero(present)
        out[np.ix_(where, where)] = r
        return out
