"""``DATASET/bags.h5`` (written by ``varfx bags``): the weakly labelled bags of
multiple-instance fine-mapping, linked to the ``dataset.h5`` beside it.

A *positive bag* is a set of the dataset's variants of which at least one is taken to be
causal (the significant variants of one LD block around a GWAS hit, or a pre-defined
block); its members are stored most significant first.  The *negative pool* is the set
of variants a training objective draws negative bags from (common variants with no
association, far from any hit).  Bags refer to variants by their index in the dataset
(``variants/*`` of ``dataset.h5``), so a bag store is only valid for the dataset it was
built from: it records that dataset's content fingerprint and is refused with any other.

Layout (format ``varfx-bags``, version :data:`BAGS_VERSION`)::

    attrs: format, format_version, varfx_version, params (JSON), summary (JSON),
           studies (JSON list of names), dataset_n_variants, dataset_sha256
    positives/offsets   (B+1,) int64   members of bag b: variants[offsets[b]:offsets[b+1]]
    positives/variants  (sum n_b,) int64 dataset indices, each bag most significant first
    positives/chrom     (B,) int16     positives/start, positives/end (B,) int64 bp span
    positives/name      (B,) str       block id (--blocks) or the lead variant's name
    positives/study     (B,) int16     index into the studies attribute
    positives/signal    (B,) str       "" or the block's signal label (primary/secondary)
    negatives/variants  (m,) int64     sorted dataset indices of the negative pool
    negatives/chrom     (m,) int16
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from . import atomic_path, check_format

BAGS_FILE = "bags.h5"
BAGS_FORMAT = "varfx-bags"
BAGS_VERSION = 1


def rebuild_command(dataset) -> str:
    return f"varfx bags {dataset}"


@dataclass
class Bag:
    """One positive bag: ``variants`` are dataset indices, most significant first."""

    index: int
    name: str
    chrom: int
    start: int
    end: int
    variants: np.ndarray  # (n,) int64
    study: str = ""
    signal: str = ""

    @property
    def n(self) -> int:
        return int(len(self.variants))


@dataclass
class BagSet:
    """What ``bags.h5`` holds: the positive bags, the negative pool and what made them."""

    positives: list[Bag]
    negatives: np.ndarray  # (m,) int64 sorted dataset indices
    negative_chrom: np.ndarray  # (m,) int
    studies: list[str] = field(default_factory=lambda: [""])
    params: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)

    def select(self, chroms=None, exclude=None) -> "BagSet":
        """The bags and negatives on ``chroms`` (all when None), minus those on ``exclude``."""
        keep = set(int(c) for c in chroms) if chroms is not None else None
        drop = set(int(c) for c in exclude or ())

        def ok(c):
            return (keep is None or int(c) in keep) and int(c) not in drop

        neg = np.array([ok(c) for c in self.negative_chrom], dtype=bool) if len(self.negative_chrom) else \
            np.zeros(0, bool)
        return BagSet(positives=[b for b in self.positives if ok(b.chrom)], negatives=self.negatives[neg],
                      negative_chrom=self.negative_chrom[neg], studies=list(self.studies),
                      params=dict(self.params), summary=dict(self.summary))


def bags_file(dataset) -> Path:
    path = Path(dataset) / BAGS_FILE
    if not path.is_file():
        if not Path(dataset).is_dir():
            raise UserError("not a dataset directory (expected the output of `varfx ingest`)", path=dataset)
        raise UserError(f"no {BAGS_FILE} (run `{rebuild_command(dataset)}` first)", path=dataset)
    return path


def write_bags(dataset, bags: BagSet, fingerprint: dict) -> Path:
    """Write ``DATASET/bags.h5`` atomically (through the guarded HDF5 writer).

    ``fingerprint``: ``{"n_variants", "sha256"}`` of the dataset the bags index into
    (:func:`varfx.store.dataset.stored_fingerprint`)."""
    from .h5 import guarded_h5

    dataset = Path(dataset)
    dest = dataset / BAGS_FILE
    with atomic_path(dest) as tmp:
        with guarded_h5(tmp, dest, "the bag store") as f5:
            fill_bags(f5, bags, fingerprint)
    return dest


def fill_bags(f5, bags: BagSet, fingerprint: dict) -> None:
    """The bag store's attributes and arrays, into the open HDF5 file ``f5`` (bags.h5,
    or an in-memory file for ``varfx bags --dry-run``'s size)."""
    import h5py

    from .. import __version__

    pos = bags.positives
    sizes = np.array([b.n for b in pos], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    members = np.concatenate([b.variants for b in pos]).astype(np.int64) if pos else np.zeros(0, np.int64)
    studies = list(bags.studies) or [""]
    study_code = {s: i for i, s in enumerate(studies)}
    text = h5py.string_dtype()
    f5.attrs.update(format=BAGS_FORMAT, format_version=BAGS_VERSION, varfx_version=__version__,
                    params=json.dumps(bags.params, default=str),
                    summary=json.dumps(bags.summary, default=str), studies=json.dumps(studies),
                    dataset_n_variants=int(fingerprint["n_variants"]),
                    dataset_sha256=str(fingerprint["sha256"]))
    g = f5.create_group("positives")
    g.create_dataset("offsets", data=offsets)
    g.create_dataset("variants", data=members)
    g.create_dataset("chrom", data=np.array([b.chrom for b in pos], np.int16))
    g.create_dataset("start", data=np.array([b.start for b in pos], np.int64))
    g.create_dataset("end", data=np.array([b.end for b in pos], np.int64))
    g.create_dataset("name", data=np.array([b.name for b in pos], dtype=object), dtype=text)
    g.create_dataset("study", data=np.array([study_code[b.study] for b in pos], np.int16))
    g.create_dataset("signal", data=np.array([b.signal for b in pos], dtype=object), dtype=text)
    n = f5.create_group("negatives")
    n.create_dataset("variants", data=np.asarray(bags.negatives, np.int64))
    n.create_dataset("chrom", data=np.asarray(bags.negative_chrom, np.int16))


def _damaged(path, dataset, what) -> UserError:
    return UserError(f"damaged {BAGS_FILE} ({what}); rebuild it with `{rebuild_command(dataset)}`", path=path)


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def load_bags(dataset, check_dataset: bool = True) -> BagSet:
    """Read and check ``DATASET/bags.h5``: format and version, its link to the
    ``dataset.h5`` beside it (variant count and content hash, unless ``check_dataset`` is
    False), and that every index is a variant of that dataset."""
    from .dataset import open_dataset, stored_fingerprint
    from .h5 import open_h5_read

    path = bags_file(dataset)
    rebuild = rebuild_command(dataset)
    with open_h5_read(path, rebuild) as h5:
        check_format(h5, BAGS_FORMAT, BAGS_VERSION, path, rebuild=rebuild)
        try:
            link = {"n_variants": int(h5.attrs["dataset_n_variants"]), "sha256": _text(h5.attrs["dataset_sha256"])}
            params = json.loads(h5.attrs["params"])
            summary = json.loads(h5.attrs["summary"])
            studies = [str(s) for s in json.loads(h5.attrs["studies"])]
            g, n = h5["positives"], h5["negatives"]
            offsets = g["offsets"][:].astype(np.int64)
            members = g["variants"][:].astype(np.int64)
            chrom, start, end = g["chrom"][:], g["start"][:], g["end"][:]
            names = [_text(x) for x in g["name"][:]]
            study = g["study"][:]
            signal = [_text(x) for x in g["signal"][:]]
            negatives = n["variants"][:].astype(np.int64)
            neg_chrom = n["chrom"][:].astype(np.int64)
        except (OSError, KeyError, ValueError, TypeError) as exc:
            text = str(exc).splitlines()[0] if str(exc) else "unreadable"
            raise _damaged(path, dataset, f"{type(exc).__name__}: {text}") from None
    B = len(chrom)
    if len(offsets) != B + 1 or offsets[0] != 0 or np.any(np.diff(offsets) < 0) or offsets[-1] != len(members) \
            or any(len(a) != B for a in (start, end, names, study, signal)):
        raise _damaged(path, dataset, "bag offsets and bag arrays disagree")
    if len(neg_chrom) != len(negatives):
        raise _damaged(path, dataset, "negatives/chrom and negatives/variants differ in length")
    if len(study) and (study.min() < 0 or study.max() >= len(studies)):
        raise _damaged(path, dataset, "a bag's study is not in the studies attribute")
    if check_dataset:
        with open_dataset(dataset, validate=False) as d:
            M = int(d["variants"]["bp"].shape[0])
            recorded = stored_fingerprint(d)
        if link["n_variants"] != M or (recorded is not None and recorded["sha256"] != link["sha256"]):
            raise UserError(f"built for another dataset.h5 (for {link['n_variants']} variants; this dataset.h5 has "
                            f"{M}{'' if link['n_variants'] != M else ' with another content hash'}); rebuild it "
                            f"with `{rebuild}`", path=path)
        for name, arr in (("positives/variants", members), ("negatives/variants", negatives)):
            if len(arr) and (arr.min() < 0 or arr.max() >= M):
                raise _damaged(path, dataset, f"{name} indexes beyond the dataset's {M} variants")
    positives = [Bag(index=b, name=names[b], chrom=int(chrom[b]), start=int(start[b]), end=int(end[b]),
                     variants=members[offsets[b]:offsets[b + 1]], study=studies[int(study[b])], signal=signal[b])
                 for b in range(B)]
    return BagSet(positives=positives, negatives=negatives, negative_chrom=neg_chrom, studies=studies,
                  params=params, summary=summary)
