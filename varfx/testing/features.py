"""Conformance tests every feature-source plugin must pass, and small input writers.

Subclass in a test module (the class name must start with ``Test`` there)::

    from varfx.testing.features import FeatureSourceConformance, write_bigwig

    class TestMyTrack(FeatureSourceConformance):
        source_name = "my-track"
        source_options = {}

        def make_input(self, tmp_path):
            # write a small input covering self.contigs ({"chr1": 5000, "22": 4000});
            # return its path (or None for a source that needs no file)
            ...

The source is looked up through the plugin manager, so a third-party source is tested
exactly as varfx loads it.  The variants (:meth:`make_variants`) lie on chromosomes 1
and 22, including the first and last bases of each (windows that pass the chromosome
ends), given as codes; the contigs are deliberately named ``chr1`` and ``22`` so that
chromosome matching with and without ``chr`` is exercised.  Checked: registration and
metadata, ``sniff`` (accepts the input, rejects other files without raising), shapes
and finiteness, chromosome naming, order equivariance and block consistency (the store
reads 16,384 variants at a time), empty input, odd windows, tracks, a chromosome the
input lacks (an error naming the file and the chromosome, or zeros, as the source's
``missing_chromosome_is_error`` says), a corrupt input (a :class:`UserError` naming the
file) and a round trip through :func:`varfx.features.store.write_features`.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest


# ----------------------------------------------------------------------------- writers


def write_bigwig(path, tracks: dict, *, span: int = 1) -> Path:
    """A base-level bigWig: ``tracks`` maps a contig name to its values (NaN: no data)."""
    import pyBigWig

    path = Path(path)
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([(c, int(len(v))) for c, v in tracks.items()], maxZooms=0)
    for c, v in tracks.items():
        v = np.asarray(v, dtype=np.float64)
        ok = np.flatnonzero(np.isfinite(v))
        if ok.size == 0:
            continue
        # runs of consecutive defined bases, written as fixed-step blocks
        cuts = np.flatnonzero(np.diff(ok) != 1) + 1
        for run in np.split(ok, cuts):
            bw.addEntries(c, int(run[0]), values=v[run].tolist(), span=span, step=span)
    bw.close()
    return path


def write_bed(path, intervals, *, gz: bool = False, header: str = "") -> Path:
    """A BED file from ``(chrom, start, end)`` tuples (0-based, half-open)."""
    path = Path(path)
    text = header + "".join(f"{c}\t{a}\t{b}\n" for c, a, b in intervals)
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def write_random_annotations(path, snps, rng) -> Path:
    """A per-variant ``table`` of two random annotations keyed by SNP: ``cons`` (standard
    normal) and ``enh`` (binary, 1 with probability 0.2), drawn from ``rng`` variant by
    variant in that order (the simulations with a GLM truth read it)."""
    path = Path(path)
    with open(path, "w") as fh:
        fh.write("SNP\tcons\tenh\n")
        for s in snps:
            fh.write(f"{s}\t{rng.standard_normal():.4f}\t{float(rng.random() < 0.2)}\n")
    return path


def write_fasta(path, contigs: dict, *, width: int = 60, index: bool = True) -> Path:
    """A FASTA from ``{name: sequence}`` (and its ``.fai`` with ``pysam.faidx``)."""
    path = Path(path)
    with open(path, "w") as fh:
        for name, seq in contigs.items():
            fh.write(f">{name}\n")
            for i in range(0, len(seq), width):
                fh.write(seq[i:i + width] + "\n")
    if index:
        import pysam

        pysam.faidx(str(path))
    return path


# ----------------------------------------------------------------------------- conformance


class FeatureSourceConformance:
    source_name: str = ""
    source_options: dict = {}
    #: contigs the input must cover: name -> length
    contigs = {"chr1": 5000, "22": 4000}
    window = 16
    n_variants = 48
    #: a chromosome code the input does not have
    missing_chrom = 7
    #: whether manifest kind inference must pick this source for make_input's file
    inferred = True

    # -- to override ----------------------------------------------------------------------

    def make_input(self, tmp_path):  # pragma: no cover - subclasses override
        raise NotImplementedError("write a small input covering self.contigs and return its path")

    def make_variants(self) -> dict:
        """``chrom`` (codes), ``bp`` (1-based), and ``snp``, ``a1``, ``a2``, ``freq``,
        ``ld_score``: unsorted, with the first and last base of each contig."""
        rng = np.random.default_rng(7)
        chrom, bp = [], []
        for name, length in self.contigs.items():
            code = int(name[3:] if name.startswith("chr") else name)
            k = self.n_variants // len(self.contigs)
            p = np.r_[1, length, rng.integers(1, length + 1, k - 2)]
            chrom += [code] * len(p)
            bp += p.tolist()
        chrom, bp = np.array(chrom, dtype=np.int64), np.array(bp, dtype=np.int64)
        n = len(bp)
        bases = np.array(list("ACGT"))
        a1 = bases[rng.integers(0, 4, n)]
        a2 = bases[(np.searchsorted(bases, a1) + rng.integers(1, 4, n)) % 4]
        return {
            "chrom": chrom, "bp": bp,
            "snp": np.array([f"rs{1000 + i}" for i in range(n)]),
            "a1": a1, "a2": a2,
            "freq": rng.uniform(0.01, 0.99, n),
            "ld_score": rng.uniform(1.0, 50.0, n),
        }

    # -- helpers --------------------------------------------------------------------------

    def _cls(self):
        from varfx.plugins import lookup

        return lookup("feature_sources", self.source_name)

    def _source(self):
        return self._cls()(**self.source_options)

    def _extra(self, v, idx=None):
        keys = ("snp", "a1", "a2", "freq", "ld_score")
        return {k: (v[k] if idx is None else v[k][idx]) for k in keys if k in v}

    def _read(self, src, path, v, idx=None, window=None, chrom=None):
        idx = np.arange(len(v["bp"])) if idx is None else idx
        w = self.window if window is None else window
        c = v["chrom"][idx] if chrom is None else chrom
        return np.asarray(src.read(path, c, v["bp"][idx], window=w, variants=self._extra(v, idx)))

    def _track(self, src, path, v, idx=None, window=None):
        idx = np.arange(len(v["bp"])) if idx is None else idx
        w = self.window if window is None else window
        return np.asarray(src.read_track(path, v["chrom"][idx], v["bp"][idx], window=w, variants=self._extra(v, idx)))

    @pytest.fixture
    def prepared(self, tmp_path):
        path = self.make_input(tmp_path)
        v = self.make_variants()
        src = self._source()
        src.prepare(path, v["chrom"], v["bp"], variants=self._extra(v))
        return src, path, v

    # -- tests ----------------------------------------------------------------------------

    def test_registered_with_metadata(self):
        from varfx.api import FeatureSource

        cls = self._cls()
        assert issubclass(cls, FeatureSource)
        assert cls.name == self.source_name and cls.description
        assert set(cls.describe()["options"]) == set(cls.options)
        assert getattr(cls, "track_store", "window") in ("window", "sequence")

    def test_sniff(self, tmp_path):
        cls = self._cls()
        path = self.make_input(tmp_path)
        junk = tmp_path / "junk.bin"
        junk.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
        empty = tmp_path / "empty"
        empty.write_bytes(b"")
        for other in (junk, empty, tmp_path / "does-not-exist"):
            assert not cls.sniff(other)
        if path is None:
            return
        assert cls.sniff(path)
        if self.inferred:
            from varfx.features.manifest import infer_kind

            assert infer_kind(path) == self.source_name

    def test_read_shape_and_finite(self, prepared):
        src, path, v = prepared
        cols = src.columns(path, variants=self._extra(v))
        assert isinstance(cols, list) and len(set(cols)) == len(cols)
        x = self._read(src, path, v)
        assert x.shape == (len(v["bp"]), len(cols))
        assert np.isfinite(x).all()
        assert np.array_equal(x, self._read(src, path, v))  # deterministic

    def test_chromosome_names_with_or_without_chr(self, prepared):
        src, path, v = prepared
        x = self._read(src, path, v)
        for names in ([f"chr{c}" for c in v["chrom"]], [str(c) for c in v["chrom"]]):
            assert np.array_equal(self._read(src, path, v, chrom=np.array(names)), x)

    def test_order_equivariant_and_blocks(self, prepared):
        src, path, v = prepared
        x = self._read(src, path, v)
        perm = np.random.default_rng(1).permutation(len(v["bp"]))
        assert np.array_equal(self._read(src, path, v, idx=perm), x[perm])
        half = len(perm) // 2
        parts = np.concatenate([self._read(src, path, v, idx=perm[:half]), self._read(src, path, v, idx=perm[half:])])
        assert np.array_equal(parts, x[perm])
        if src.track_channels(path):
            t = self._track(src, path, v)
            assert np.array_equal(self._track(src, path, v, idx=perm), t[perm])

    def test_empty(self, prepared):
        src, path, v = prepared
        idx = np.zeros(0, dtype=np.int64)
        x = self._read(src, path, v, idx=idx)
        assert x.shape == (0, len(src.columns(path, variants=self._extra(v))))
        if src.track_channels(path):
            assert self._track(src, path, v, idx=idx).shape == (0, self.window, len(src.track_channels(path)))

    def test_windows_and_tracks(self, prepared):
        src, path, v = prepared
        n = len(v["bp"])
        channels = src.track_channels(path)
        for w in (1, 7, self.window):
            x = self._read(src, path, v, window=w)
            assert x.shape[0] == n and np.isfinite(x).all()
            if channels:
                t = self._track(src, path, v, window=w)
                assert t.shape == (n, w, len(channels))
                assert t.dtype.kind in "fu" and (t.dtype.kind == "u" or np.isfinite(t).all())
        scalar, track = src.extract(path, v["chrom"], v["bp"], window=self.window, track_window=self.window,
                                    variants=self._extra(v))
        assert np.allclose(scalar, self._read(src, path, v))
        if channels:
            assert np.array_equal(track, self._track(src, path, v))
        else:
            assert track is None

    def test_missing_chromosome(self, prepared):
        from varfx.errors import UserError

        src, path, v = prepared
        if path is None:
            return
        c = np.array([self.missing_chrom, self.missing_chrom])
        p = np.array([10, 20])
        extra = {k: a[:2] for k, a in self._extra(v).items()}
        if getattr(src, "missing_chromosome_is_error", False):
            with pytest.raises(UserError) as err:
                src.read(path, c, p, window=self.window, variants=extra)
            msg = str(err.value)
            assert str(path) in msg and str(self.missing_chrom) in msg
        else:
            src.prepare(path, c, p, variants=extra)
            x = np.asarray(src.read(path, c, p, window=self.window, variants=extra))
            assert x.shape[0] == 2 and np.all(x == 0)

    def test_corrupt_input_is_user_error(self, tmp_path):
        from varfx.errors import UserError

        path = self.make_input(tmp_path)
        if path is None:
            return
        bad = tmp_path / ("corrupt-" + Path(path).name)
        bad.write_bytes(b"\x00\x01garbage\xff\xfe" * 64)
        v = self.make_variants()
        src = self._source()
        with pytest.raises(UserError) as err:
            src.prepare(bad, v["chrom"], v["bp"], variants=self._extra(v))
            src.read(bad, v["chrom"], v["bp"], window=self.window, variants=self._extra(v))
        assert str(bad) in str(err.value)

    def test_store_round_trip(self, prepared, tmp_path):
        import h5py

        from varfx.features.manifest import ManifestEntry
        from varfx.features.store import read_features, write_features

        src, path, v = prepared
        entry = ManifestEntry(name="f", kind=self.source_name, path=path, options=dict(self.source_options))
        order = np.lexsort((v["bp"], v["chrom"]))
        vs = {k: a[order] for k, a in v.items()}
        with h5py.File(tmp_path / "x.h5", "w") as f5:
            summary = write_features(f5.create_group("features"), vs["chrom"], vs["bp"], [entry],
                                     window=self.window, variants=self._extra(vs), dtype="float32")
            got = read_features(f5["features"], (0, len(order)))
            raw = read_features(f5["features"], (0, len(order)), raw=True)
        cols = src.columns(path, variants=self._extra(vs))
        assert summary["scalar_columns"] == [f"f.{c}" for c in cols]
        want = self._read(src, path, vs)
        assert np.allclose(raw["scalar"], want, rtol=1e-5, atol=1e-5)
        x = got["scalar"].astype(np.float64)
        live = x.std(axis=0) > 0
        assert np.allclose(x.mean(axis=0), 0, atol=1e-5)
        assert np.allclose(x[:, live].std(axis=0), 1, atol=1e-4)
        assert set(summary["constant_columns"]) >= {f"f.{c}" for c, ok in zip(cols, live) if not ok}
        channels = src.track_channels(path)
        if channels and getattr(src, "track_store", "window") == "window":
            assert got["window"].shape == (len(order), self.window, len(channels))
            assert np.allclose(raw["window"], self._track(src, path, vs), rtol=1e-5, atol=1e-5)
        elif channels:
            assert np.array_equal(got["sequence"], self._track(src, path, vs))
