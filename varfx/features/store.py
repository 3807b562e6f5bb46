"""Writing variant features into a dataset's HDF5 group, and reading them back.

:func:`write_features` fills an open (empty) HDF5 group, normally ``dataset.h5``'s
``features`` group while ``varfx ingest`` writes the dataset atomically (the whole
dataset is renamed into place once complete, so no partial features are ever visible).
Layout (``M`` variants in dataset order, ``w`` the feature window)::

    features/                 attrs: format "varfx-features", format_version 1, window w,
                              variant_offset (= w // 2), n_variants, dtype, entries (JSON)
    features/scalar           float32 (M, S)   per-variant features, normalised
    features/scalar_names     str (S,)         "NAME.COLUMN" (e.g. "phylop.mean")
    features/scalar_mean      float64 (S,)     raw mean over all M variants
    features/scalar_sd        float64 (S,)     raw standard deviation (0: constant column)
    features/scalar_constant  bool (S,)        constant columns, stored as 0
    features/window           float16|32 (M, w, T)  per-base tracks, normalised per track
    features/window_names     str (T,)         "NAME.CHANNEL" (e.g. "phylop.value")
    features/window_mean|sd|constant (T,)      as for scalar, over all M * w values
    features/sequence         uint8 (M, w, 5)  one-hot A,C,G,T,V (only with a FASTA)

``features/window`` is chunked ``(r, w, 1)`` (one track per chunk: tracks compress
apart much better than interleaved) and ``sequence`` ``(r, w, 5)``, ``r`` a power of two,
at most 1024 (4 MiB per chunk at most); gzip level 4 + shuffle.
The dataset is sorted by (chromosome, position), so an LD window's variants are a
contiguous index range: :func:`read_features` reads ``[start, stop)`` without touching
the rest.  Raw values are ``x * sd + mean`` (``read_features(..., raw=True)``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from varfx.errors import UserError
from varfx.store import check_format, input_record

FEATURES_FORMAT = "varfx-features"
FEATURES_VERSION = 1
DEFAULT_WINDOW = 256
#: variants processed per step (a multiple of every chunk's row count)
BLOCK_ROWS = 16384
#: target bytes per chunk of the windowed datasets
CHUNK_BYTES = 1 << 22


class _Stats:
    """Running mean and sum of squared deviations per column (Chan et al. merge)."""

    def __init__(self, ncol: int):
        import numpy as np

        self.n = 0
        self.mean = np.zeros(ncol)
        self.m2 = np.zeros(ncol)

    def update(self, x) -> None:
        import numpy as np

        x = np.asarray(x, dtype=np.float64)
        nb = x.shape[0]
        if nb == 0:
            return
        mb = x.mean(axis=0)
        m2b = ((x - mb) ** 2).sum(axis=0)
        tot = self.n + nb
        delta = mb - self.mean
        self.mean = self.mean + delta * (nb / tot)
        self.m2 = self.m2 + m2b + delta**2 * (self.n * nb / tot)
        self.n = tot

    def finish(self):
        """(mean, sd, constant): sd is the population sd; a column is constant when its sd
        is 0 or below float32 resolution of its mean."""
        import numpy as np

        sd = np.sqrt(np.maximum(self.m2, 0.0) / max(self.n, 1))
        constant = (sd == 0) | (sd <= 1e-6 * np.abs(self.mean))
        sd = np.where(constant, 0.0, sd)
        return self.mean, sd, constant


def _chunk_rows(row_bytes: int, cap: int = 1024) -> int:
    r = 1
    while r * 2 <= cap and (r * 2) * row_bytes <= CHUNK_BYTES:
        r *= 2
    return r


class _Entry:
    """A manifest entry with its source instance and its columns."""

    def __init__(self, entry, window, variants_all):
        self.entry = entry
        self.name = entry.name
        self.path = entry.path
        self.src = entry.source()
        self.window = int(entry.window or window)
        self.columns = list(self._call("columns", entry.path, variants=variants_all))
        chans = getattr(self.src, "track_channels", None)
        self.channels = list(self._call("track_channels", entry.path)) if chans else []
        self.store = getattr(self.src, "track_store", "window") if self.channels else None
        if self.store not in (None, "window", "sequence"):
            raise UserError(f"{self.where}: feature source {self.src.name!r} has track_store {self.store!r}: expected "
                            "'window' or 'sequence'")

    @property
    def where(self) -> str:
        e = self.entry
        return f"{e.where} ({e.name})" if e.manifest is not None else f"feature {e.name!r} ({e.kind})"

    def _call(self, method, *args, **kw):
        try:
            return getattr(self.src, method)(*args, **kw)
        except UserError as exc:
            raise UserError(f"{self.where}: {exc}") from None

    def prepare(self, chrom, bp, variants):
        if hasattr(self.src, "prepare"):
            self._call("prepare", self.path, chrom, bp, variants=variants)

    def extract(self, chrom, bp, variants, track_window):
        import numpy as np

        k = len(bp)
        if hasattr(self.src, "extract"):
            scalar, track = self._call("extract", self.path, chrom, bp, window=self.window, track_window=track_window,
                                       variants=variants)
        else:
            scalar = self._call("read", self.path, chrom, bp, window=self.window, variants=variants)
            track = (self._call("read_track", self.path, chrom, bp, window=track_window, variants=variants)
                     if self.channels else None)
        scalar = np.asarray(scalar)
        if scalar.shape != (k, len(self.columns)):
            raise UserError(f"{self.where}: feature source {self.src.name!r} returned shape {scalar.shape} for "
                            f"{k} variants and columns {self.columns}: expected ({k}, {len(self.columns)})")
        if scalar.size and not np.isfinite(scalar).all():
            raise UserError(f"{self.where}: feature source {self.src.name!r} returned non-finite values")
        if self.channels:
            track = self._check_track(track, k, track_window)
        return scalar, track

    def read_track(self, chrom, bp, variants, track_window):
        return self._check_track(self._call("read_track", self.path, chrom, bp, window=track_window,
                                            variants=variants), len(bp), track_window)

    def _check_track(self, track, k, w):
        import numpy as np

        track = np.asarray(track)
        if track.shape != (k, w, len(self.channels)):
            raise UserError(f"{self.where}: feature source {self.src.name!r} returned a track of shape {track.shape}: "
                            f"expected ({k}, {w}, {len(self.channels)})")
        if track.dtype.kind == "f" and track.size and not np.isfinite(track).all():
            raise UserError(f"{self.where}: feature source {self.src.name!r} returned non-finite track values")
        return track


def _slice(variants, a, b):
    if not variants:
        return {}
    return {k: v[a:b] for k, v in variants.items() if v is not None}


def write_features(h5group, variants_chrom, variants_bp, manifest_entries, *, window: int = DEFAULT_WINDOW,
                   progress=None, variants=None, dtype: str = "float16", memory_budget: int = 1 << 30,
                   block_rows: int = BLOCK_ROWS) -> dict:
    """Compute, normalise and write the features of ``M`` variants into ``h5group``.

    ``variants_chrom`` (chromosome codes, 23 = X) and ``variants_bp`` (1-based) give the
    dataset's variants in dataset order; ``manifest_entries`` is a list of
    :class:`varfx.features.manifest.ManifestEntry` (``read_manifest`` /
    ``entries_for_ingest``); ``window`` is the per-base window (``--feature-window``);
    ``variants`` optionally carries per-variant arrays the sources may use (``snp``,
    ``a1``, ``a2``, ``freq``, ``ld_score``); ``dtype`` is the storage type of
    ``features/window`` (``float16`` or ``float32``); ``progress(message, done, total)``
    is called as blocks of variants are done.

    Scalar features are normalised exactly (mean 0, variance 1 over all variants) in
    place after a first pass; per-base tracks are normalised per track over all
    ``M * window`` values, which needs their statistics first: they are kept in memory
    between the passes when they fit in ``memory_budget`` bytes (float32), otherwise
    read again from their sources.  Returns a JSON-serialisable summary.
    """
    import numpy as np

    t0 = time.time()
    if dtype not in ("float16", "float32"):
        raise UserError(f"feature window dtype {dtype!r}: expected float16 or float32")
    window = int(window)
    if window <= 0:
        raise UserError(f"--feature-window {window}: expected a positive number of bp")
    chrom = np.asarray(variants_chrom)
    bp = np.asarray(variants_bp, dtype=np.int64)
    M = len(bp)
    if len(chrom) != M:
        raise ValueError(f"{len(chrom)} chromosomes for {M} positions")
    variants = {k: np.asarray(v) for k, v in (variants or {}).items() if v is not None}
    for k, v in variants.items():
        if len(v) != M:
            raise ValueError(f"variants[{k!r}] has {len(v)} values for {M} variants")
    entries = list(manifest_entries)
    names = [e.name for e in entries]
    for n in names:
        if names.count(n) > 1:
            raise UserError(f"feature name {n!r} used twice: expected unique names")

    def report(msg, done, total):
        if progress is not None:
            progress(msg, done, total)

    report("features: checking inputs", 0, M)
    ents = [_Entry(e, window, variants) for e in entries]
    seq = [e for e in ents if e.store == "sequence"]
    if len(seq) > 1:
        raise UserError(f"{seq[1].where}: a second sequence feature (after {seq[0].name!r}): expected one FASTA")
    for e in ents:
        e.prepare(chrom, bp, variants)

    scalar_names = [f"{e.name}.{c}" for e in ents for c in e.columns]
    track_ents = [e for e in ents if e.store == "window"]
    track_names = [f"{e.name}.{c}" for e in track_ents for c in e.channels]
    S, T = len(scalar_names), len(track_names)
    sl, off = {}, 0
    for e in ents:
        sl[e.name] = slice(off, off + len(e.columns))
        off += len(e.columns)
    tl, off = {}, 0
    for e in track_ents:
        tl[e.name] = slice(off, off + len(e.channels))
        off += len(e.channels)

    # ---- datasets
    import h5py

    g = h5group
    fdt = np.dtype(dtype)
    sdt = h5py.string_dtype("utf-8")
    comp = dict(compression="gzip", compression_opts=4, shuffle=True) if M else {}
    ds_scalar = g.create_dataset("scalar", shape=(M, S), dtype=np.float32,
                                 chunks=(min(M, BLOCK_ROWS), S) if M and S else None, **(comp if S else {}))
    ds_window = ds_seq = None
    # one track per chunk: tracks compress very differently (a 0/1 BED coverage next to
    # a dense signal compresses ~25% worse interleaved; measured in benchmarks/features.py)
    w_rows = _chunk_rows(window * fdt.itemsize)
    if T:
        ds_window = g.create_dataset("window", shape=(M, window, T), dtype=fdt,
                                     chunks=(min(M, w_rows), window, 1) if M else None, **comp)
    if seq:
        nch = len(seq[0].channels)
        s_rows = _chunk_rows(window * nch)
        ds_seq = g.create_dataset("sequence", shape=(M, window, nch), dtype=np.uint8,
                                  chunks=(min(M, s_rows), window, nch) if M else None, **comp)
        ds_seq.attrs["channels"] = "".join(seq[0].channels) if all(len(c) == 1 for c in seq[0].channels) \
            else json.dumps(seq[0].channels)
        ds_seq.attrs["source"] = seq[0].name

    block = max(int(block_rows) // 1024 * 1024, 1024)
    cache_tracks = T > 0 and M * window * T * 4 <= memory_budget
    cache: list = []
    s_stats, t_stats = _Stats(S), _Stats(T)

    # ---- pass 1: scalars (raw), tracks (stats; cached or re-read), sequence (final)
    for a in range(0, M, block):
        b = min(M, a + block)
        k = b - a
        c_blk, p_blk, v_blk = chrom[a:b], bp[a:b], _slice(variants, a, b)
        xs = np.zeros((k, S), dtype=np.float64)
        xt = np.zeros((k, window, T), dtype=np.float32) if T else None
        for e in ents:
            report(f"features: reading {e.name}", a, M)
            scalar, track = e.extract(c_blk, p_blk, v_blk, window)
            xs[:, sl[e.name]] = scalar
            if e.store == "window":
                xt[:, :, tl[e.name]] = track
            elif e.store == "sequence":
                ds_seq[a:b] = track.astype(np.uint8, copy=False)
        if S:
            ds_scalar[a:b] = xs.astype(np.float32)
            s_stats.update(xs.astype(np.float32))
        if T:
            t_stats.update(xt.reshape(-1, T))
            if cache_tracks:
                cache.append(xt)
        report("features: reading", b, M)

    s_mean, s_sd, s_const = s_stats.finish()
    t_mean, t_sd, t_const = t_stats.finish()

    # ---- pass 2: normalise scalars in place; write normalised tracks
    if S and M:
        scale = np.where(s_const, 0.0, 1.0 / np.where(s_sd > 0, s_sd, 1.0))
        for a in range(0, M, block):
            b = min(M, a + block)
            x = ds_scalar[a:b].astype(np.float64)
            ds_scalar[a:b] = ((x - s_mean) * scale).astype(np.float32)
    if T and M:
        scale = np.where(t_const, 0.0, 1.0 / np.where(t_sd > 0, t_sd, 1.0))
        big = float(np.finfo(fdt).max)
        for i, a in enumerate(range(0, M, block)):
            b = min(M, a + block)
            if cache_tracks:
                xt = cache[i]
                cache[i] = None
            else:
                report("features: writing tracks", a, M)
                xt = np.zeros((b - a, window, T), dtype=np.float32)
                for e in track_ents:
                    xt[:, :, tl[e.name]] = e.read_track(chrom[a:b], bp[a:b], _slice(variants, a, b), window)
            z = (xt.astype(np.float64) - t_mean) * scale
            ds_window[a:b] = np.clip(z, -big, big).astype(fdt)
        report("features: writing tracks", M, M)

    # ---- names, statistics, attributes
    def put(name, data, **kw):
        g.create_dataset(name, data=data, **kw)

    put("scalar_names", np.array(scalar_names, dtype=object), dtype=sdt)
    put("scalar_mean", np.asarray(s_mean, dtype=np.float64))
    put("scalar_sd", np.asarray(s_sd, dtype=np.float64))
    put("scalar_constant", np.asarray(s_const, dtype=bool))
    if T:
        put("window_names", np.array(track_names, dtype=object), dtype=sdt)
        put("window_mean", np.asarray(t_mean, dtype=np.float64))
        put("window_sd", np.asarray(t_sd, dtype=np.float64))
        put("window_constant", np.asarray(t_const, dtype=bool))

    records = []
    for e in ents:
        rec = e.entry.record()
        rec["columns"] = [f"{e.name}.{c}" for c in e.columns]
        rec["track"] = [f"{e.name}.{c}" for c in e.channels]
        rec["track_store"] = e.store
        if e.path is not None and Path(e.path).is_file():
            rec.update(input_record(e.path))
        info = getattr(e.src, "last_info", None)
        if info:
            rec["info"] = info
        records.append(rec)
    constant = [n for n, c in zip(scalar_names, s_const) if c] + [n for n, c in zip(track_names, t_const) if c]
    g.attrs["format"] = FEATURES_FORMAT
    g.attrs["format_version"] = FEATURES_VERSION
    g.attrs["window"] = window
    g.attrs["variant_offset"] = window // 2
    g.attrs["n_variants"] = M
    g.attrs["dtype"] = dtype
    g.attrs["entries"] = json.dumps(records, default=str)
    summary = {
        "n_variants": int(M),
        "window": window,
        "dtype": dtype,
        "scalar_columns": scalar_names,
        "window_tracks": track_names,
        "sequence": seq[0].name if seq else None,
        "constant_columns": constant,
        "entries": records,
        "tracks_read_twice": bool(T and not cache_tracks),
        "seconds": round(time.time() - t0, 3),
    }
    report("features: done", M, M)
    return summary


def _as_range(index_range, M):
    if isinstance(index_range, slice):
        start, stop, step = index_range.indices(M)
        if step != 1:
            raise ValueError("read_features reads a contiguous range (step 1)")
        return start, stop
    start, stop = index_range
    start, stop = int(start), int(stop)
    if not 0 <= start <= stop <= M:
        raise IndexError(f"index range [{start}, {stop}) outside [0, {M}]")
    return start, stop


def _names(g, key):
    if key not in g:
        return []
    return [n.decode() if isinstance(n, bytes) else str(n) for n in g[key][()]]


def feature_names(h5group) -> dict:
    """``{"scalar": [...], "window": [...], "sequence": [channels]}`` of a features group."""
    g = h5group
    seq = []
    if "sequence" in g:
        ch = g["sequence"].attrs.get("channels", "ACGTV")
        ch = ch.decode() if isinstance(ch, bytes) else str(ch)
        seq = json.loads(ch) if ch.startswith("[") else list(ch)
    return {"scalar": _names(g, "scalar_names"), "window": _names(g, "window_names"), "sequence": seq}


def check_features(h5group, path=None) -> None:
    """A UserError unless ``h5group`` is a features group this varfx reads."""
    check_format(h5group, FEATURES_FORMAT, FEATURES_VERSION, path)


def read_features(h5group, index_range, *, raw: bool = False) -> dict:
    """The features of variants ``[start, stop)`` (a ``(start, stop)`` pair or a slice).

    Returns ``{"scalar": float32 (n, S), "window": float32 (n, w, T) or None,
    "sequence": uint8 (n, w, 5) or None, "scalar_names", "window_names", "window": ...}``;
    values are normalised (mean 0, sd 1) unless ``raw`` (then ``x * sd + mean``).
    Only the chunks covering the range are read.
    """
    import numpy as np

    g = h5group
    check_features(g)
    M = int(g.attrs["n_variants"])
    a, b = _as_range(index_range, M)
    out = {"start": a, "stop": b, "window_size": int(g.attrs["window"]),
           "variant_offset": int(g.attrs["variant_offset"])}
    names = feature_names(g)
    out["scalar_names"] = names["scalar"]
    out["window_names"] = names["window"]
    out["sequence_channels"] = names["sequence"]
    S = len(names["scalar"])
    x = g["scalar"][a:b] if S else np.zeros((b - a, 0), dtype=np.float32)
    if raw and S:
        x = (x * g["scalar_sd"][()] + g["scalar_mean"][()]).astype(np.float32)
    out["scalar"] = np.asarray(x, dtype=np.float32)
    if "window" in g:
        w = g["window"][a:b].astype(np.float32)
        if raw:
            w = (w * g["window_sd"][()] + g["window_mean"][()]).astype(np.float32)
        out["window"] = w
    else:
        out["window"] = None
    out["sequence"] = g["sequence"][a:b] if "sequence" in g else None
    return out


def recorded_features(h5, annotations=None):
    """(entries, window, scalar stats, track stats, track dtype, scalar names) of a
    dataset's features, or None when it has none.  ``annotations``: a manifest whose
    entries replace the recorded ones of the same name (files moved since ingest).
    Scalar stats are ``(raw mean, 1 / sd (0 for a constant column))`` per column."""
    import numpy as np

    from varfx.features.manifest import ManifestEntry, read_manifest

    if "features" not in h5:
        return None
    g = h5["features"]
    records = json.loads(g.attrs["entries"])
    override = {e.name: e for e in read_manifest(annotations)} if annotations is not None else {}
    entries = []
    for rec in records:
        if rec["name"] in override:
            entries.append(override[rec["name"]])
        else:
            entries.append(ManifestEntry(name=rec["name"], kind=rec["kind"],
                                         path=Path(rec["path"]) if rec.get("path") else None,
                                         window=rec.get("window"), options=dict(rec.get("options") or {})))

    def stats(prefix):
        if f"{prefix}_mean" not in g:
            return None
        mean = g[f"{prefix}_mean"][:].astype(np.float64)
        sd = g[f"{prefix}_sd"][:].astype(np.float64)
        const = g[f"{prefix}_constant"][:].astype(bool)
        return mean, np.where(const, 0.0, 1.0 / np.where(sd > 0, sd, 1.0))

    wdtype = np.dtype(str(g.attrs.get("dtype", "float16")))
    return entries, int(g.attrs["window"]), stats("scalar"), stats("window"), wdtype, _names(g, "scalar_names")


def _bigwig_windows(bw, cname, length, start0, window):
    """``(n, window)`` float32 values of a bigWig around sorted 0-based window starts on
    contig ``cname`` (``length`` bp), NaN where it has no data (and past the contig's
    ends): :meth:`BigWigSource.values` before its NaN -> 0, read the same way (nearby
    windows share one read)."""
    import numpy as np

    from varfx.features.sources import gather_windows

    def fetch(s, e):
        seg = np.full(e - s, np.nan, dtype=np.float32)
        a, b = max(s, 0), min(e, int(length))
        if b > a:
            seg[a - s:b - s] = bw.values(cname, a, b, numpy=True)
        return seg

    return gather_windows(fetch, start0, int(window), dtype=np.float32)


class NewVariantFeatures:
    """A dataset's features computed for variants not in it (``varfx score-vcf``): the
    recorded sources read again, normalised with the recorded raw mean/sd, in the
    precision ingest stores (so a dataset variant gets its stored values back).
    ``plan``: :func:`recorded_features`; ``fasta`` replaces the path of a ``fasta`` entry.

    :meth:`coverage` says which variants each input covers (a position it has no data
    for cannot be computed: ingest's zero fill is not information), :meth:`contigs`
    which contigs the inputs know; :meth:`compute` gives the normalised inputs."""

    def __init__(self, plan, fasta=None):
        import numpy as np

        entries, self.window, self.sstats, self.tstats, self.wdtype, names = plan
        if fasta is not None:
            for e in entries:
                if e.kind == "fasta":
                    e.path = Path(fasta)
        self.ents = []
        for e in entries:
            recorded = [n for n in names if n.startswith(f"{e.name}.")]
            v = {"freq": np.zeros(1)}
            if f"{e.name}.ld_score" in recorded:
                v["ld_score"] = np.zeros(1)  # so that columns=auto lists it, as at ingest
            ent = _Entry(e, self.window, v)
            have = [f"{e.name}.{c}" for c in ent.columns]
            if have != recorded:
                raise UserError(f"{ent.where}: its columns {have} are not the recorded ones {recorded} (other "
                                "options than at ingest?)")
            self.ents.append(ent)
        self.S = sum(len(e.columns) for e in self.ents)
        self.T = sum(len(e.channels) for e in self.ents if e.store == "window")
        # an unknown LD score is the recorded mean: the value normalisation maps to 0,
        # what ingest fills a missing value with
        self.ld_fill = {e.name: float(self.sstats[0][names.index(f"{e.name}.ld_score")])
                        for e in self.ents if f"{e.name}.ld_score" in names}
        self._handles: dict = {}

    # -- coverage ---------------------------------------------------------------------

    def _span(self, e) -> int:
        """The widest window ``e`` reads around a variant (scalar or track)."""
        return max(e.window, self.window if e.channels else 0)

    def _bigwig(self, e):
        if e.name not in self._handles:
            from varfx.features.sources import BigWigSource, contig_lookup

            bw = BigWigSource.open(e.path)
            lengths = bw.chroms()
            self._handles[e.name] = (bw, contig_lookup(lengths), lengths)
        return self._handles[e.name]

    def _bed(self, e):
        if e.name not in self._handles:
            from varfx.features.sources import read_bed_intervals

            self._handles[e.name] = read_bed_intervals(e.path)[0]
        return self._handles[e.name]

    def _fasta(self, e):
        if e.name not in self._handles:
            from varfx.features.sequence import open_fasta
            from varfx.features.sources import contig_lookup

            fa = open_fasta(e.path)
            self._handles[e.name] = (fa, contig_lookup(fa.references), dict(zip(fa.references, fa.lengths)))
        return self._handles[e.name]

    def contigs(self):
        """Chromosome codes some file-backed input knows (a bigWig's or FASTA's contigs,
        a BED's contigs with intervals), or None when no input has contigs (computed
        from the variant alone, or a plugin that does not say)."""
        known, any_input = set(), False
        for e in self.ents:
            kind = e.src.name
            if kind == "bigwig":
                known |= set(self._bigwig(e)[1])
            elif kind == "bed":
                known |= set(self._bed(e))
            elif kind == "fasta":
                known |= set(self._fasta(e)[1])
            else:
                continue
            any_input = True
        return known if any_input else None

    def coverage(self, chrom, bp) -> dict:
        """``{entry name: bool (n,)}``: whether the input of each entry covers each
        variant (chromosome codes, 1-based positions, any order).  A bigWig covers a
        variant when it has the contig, the position is within it, and it has a value at
        some base of the variant's window; a BED when it has an interval on the contig;
        a FASTA entry when it has the contig and the position is within it.  A plugin
        source may define ``covered(path, chrom, pos, *, window) -> bool (n,)``; other
        sources cover everything."""
        import numpy as np

        from varfx.features.sources import by_chromosome, window_starts

        chrom = np.asarray(chrom, dtype=np.int64)
        bp = np.asarray(bp, dtype=np.int64)
        out, raws = {}, {}
        for e in self.ents:
            kind, w = e.src.name, self._span(e)
            if hasattr(e.src, "covered"):
                ok = np.asarray(e._call("covered", e.path, chrom, bp, window=w), dtype=bool)
                if ok.shape != bp.shape:
                    raise UserError(f"{e.where}: feature source {kind!r} covered() returned shape {ok.shape} for "
                                    f"{len(bp)} variants")
            elif kind in ("bigwig", "bed", "fasta"):
                ok = np.zeros(len(bp), dtype=bool)
                for code, idx in by_chromosome(chrom, bp):
                    p = bp[idx]
                    if kind == "bigwig":
                        bw, names, lengths = self._bigwig(e)
                        if code in names:
                            L = int(lengths[names[code]])
                            sub = idx[(p >= 1) & (p <= L)]
                            raw = _bigwig_windows(bw, names[code], L, window_starts(bp[sub], w), w)
                            ok[sub] = ~np.isnan(raw).all(axis=1)
                            if self._reuse(e):
                                raws.setdefault(e.name, []).append((sub, raw))
                    elif kind == "bed":
                        # a BED has no extent but its intervals: outside them is 0 coverage,
                        # data; only a contig without any interval is not covered
                        ok[idx] = code in self._bed(e)
                    else:
                        fa, names, lengths = self._fasta(e)
                        if code in names:
                            ok[idx] = (p >= 1) & (p <= int(lengths[names[code]]))
            else:
                ok = np.ones(len(bp), dtype=bool)
            out[e.name] = ok
        # the bigWig values read here, in variant order, for compute(..., covered=)
        self._raw = {}
        for name, parts in raws.items():
            full = np.zeros((len(bp), parts[0][1].shape[1]), dtype=np.float32)
            for sub, raw in parts:
                full[sub] = raw
            self._raw[name] = (len(bp), full)
        return out

    def _reuse(self, e) -> bool:
        """Whether ``e`` is a built-in bigWig entry whose features :meth:`compute` can take
        from the values :meth:`coverage` read (one window for summary and track), so that
        the file is read once."""
        from varfx.features.sources import BigWigSource

        return type(e.src) is BigWigSource and (not e.channels or e.window == self.window)

    def close(self) -> None:
        for h in self._handles.values():
            if isinstance(h, tuple) and hasattr(h[0], "close"):
                h[0].close()
        self._handles.clear()

    # -- values -----------------------------------------------------------------------

    def compute(self, chrom, bp, freq, *, covered=None):
        """``{"features": (n, S) float64, "window": (n, w, T)}`` (keys present as recorded)
        for chromosome codes, 1-based positions and allele frequencies of variants every
        input covers; an ``ld_score`` (unknown for a new variant) is the recorded mean.
        ``covered``: these variants are those of the last :meth:`coverage` call where
        this boolean mask is True (its bigWig reads are used again)."""
        import numpy as np

        n = len(bp)
        raw = getattr(self, "_raw", {}) if covered is not None else {}
        variants = {"freq": freq, "maf": np.minimum(freq, 1 - freq), "ld_score": np.full(n, np.nan)}
        xs = np.zeros((n, self.S))
        xt = np.zeros((n, self.window, self.T), dtype=np.float32) if self.T else None
        s = t = 0
        for e in self.ents:
            v = variants
            if e.name in self.ld_fill:
                v = {**variants, "ld_score": np.full(n, self.ld_fill[e.name])}
            if e.name in raw and raw[e.name][0] == len(covered):
                # BigWigSource.extract on the values already read: NaN (no data) -> 0
                vals = np.nan_to_num(raw[e.name][1][covered], nan=0.0, posinf=0.0, neginf=0.0)
                scalar = e.src._summarise(vals)
                track = e._check_track(vals[:, :, None], n, self.window) if e.channels else None
            else:
                e.prepare(chrom, bp, v)
                scalar, track = e.extract(chrom, bp, v, self.window)
            xs[:, s:s + len(e.columns)] = scalar
            s += len(e.columns)
            if e.store == "window":
                xt[:, :, t:t + len(e.channels)] = track
                t += len(e.channels)
        out = {}
        if self.S:
            mean, scale = self.sstats
            # the precision of ingest: raw float32, normalised, stored float32
            x = xs.astype(np.float32).astype(np.float64)
            out["features"] = ((x - mean) * scale).astype(np.float32).astype(np.float64)
        if self.T:
            mean, scale = self.tstats
            big = float(np.finfo(self.wdtype).max)
            z = (xt.astype(np.float64) - mean) * scale
            out["window"] = np.clip(z, -big, big).astype(self.wdtype)
        return out
