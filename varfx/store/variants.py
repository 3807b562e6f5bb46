"""What a prior reads from a dataset: the per-variant inputs (frequency, scalar
features, per-base tracks) and the prior's prediction of log f for every variant.

The per-base tracks (``features/window``, the largest input) are read in row ranges
(:func:`track_rows`) wherever a caller cannot hold them whole.

A prior that reads DNA (:meth:`varfx.api.Prior.sequence_length` > 0) also gets the
reference bases around each variant, read from a FASTA at fit and score time
(:func:`sequence_inputs`): the one ingest recorded with the dataset (attributes
``fasta_path``, ``fasta_bytes``, ``fasta_sha256`` of dataset.h5, :func:`fasta_record`),
or one given with ``--fasta`` (:func:`resolve_fasta`).  They are held in memory, one byte
per base: ``M x L`` bytes (530 MB for a million variants at the seqcnn default L = 529)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import UserError

#: the FASTA's checksum covers this many bytes, half from its start and half from its
#: end (the whole file when smaller): cheap to repeat per fit, and it tells two builds
#: or a replaced file apart even when the first contig starts with megabases of N
FASTA_HASH_LIMIT = 16 << 20
#: more SNVs than this fraction whose alleles are neither the FASTA base: a note (a
#: wrong genome build or a FASTA of another species gives ~60%, a right one ~0%)
ALT_MISMATCH_NOTE = 0.05


def fasta_checksum(path, limit: int = FASTA_HASH_LIMIT) -> str:
    """SHA-256 of a file's first and last ``limit // 2`` bytes (of all of it when it is
    not larger than ``limit``)."""
    import hashlib

    h = hashlib.sha256()
    size = os.path.getsize(path)
    half = limit // 2
    with open(path, "rb") as fh:
        spans = [(0, size)] if size <= limit else [(0, half), (size - half, half)]
        for start, n in spans:
            fh.seek(start)
            while n > 0:
                chunk = fh.read(min(n, 1 << 20))
                if not chunk:
                    break
                h.update(chunk)
                n -= len(chunk)
    return h.hexdigest()


def fasta_record(path) -> dict:
    """What identifies a FASTA: absolute path, size in bytes, :func:`fasta_checksum`
    (the attributes ingest writes into dataset.h5)."""
    path = Path(path)
    return {"path": str(path.resolve()), "bytes": int(os.path.getsize(path)),
            "sha256": fasta_checksum(path), "sha256_of_bytes": FASTA_HASH_LIMIT}


def write_fasta_attrs(f5, path) -> dict:
    """Record the FASTA ``path`` on an open, writable dataset.h5 (``fasta_*`` attributes)."""
    rec = fasta_record(path)
    f5.attrs["fasta_path"] = rec["path"]
    f5.attrs["fasta_bytes"] = rec["bytes"]
    f5.attrs["fasta_sha256"] = rec["sha256"]
    # the checksum's span (first and last half of this many bytes): a later varfx that
    # changes the span still knows what the recorded one covered
    f5.attrs["fasta_sha256_of_bytes"] = rec["sha256_of_bytes"]
    return rec


def recorded_fasta(h5) -> dict | None:
    """The FASTA recorded with a dataset (as :func:`fasta_record`), or None."""
    if "fasta_path" not in h5.attrs:
        return None
    attr = h5.attrs
    return {"path": str(attr["fasta_path"]), "bytes": int(attr.get("fasta_bytes", -1)),
            "sha256": str(attr.get("fasta_sha256", "")),
            "sha256_of_bytes": int(attr.get("fasta_sha256_of_bytes", FASTA_HASH_LIMIT))}


def resolve_fasta(h5, override=None, *, notes=None, option="--fasta") -> dict:
    """The FASTA a prior reads: ``override`` (``--fasta``) when given, else the one
    recorded with the dataset.  Returns its :func:`fasta_record`.

    No FASTA recorded, or a recorded one that is no longer there, without an override:
    a one-line error saying to pass ``--fasta``.  A FASTA whose size or checksum differs
    from the recorded one (an override of another file, or the file changed since
    ingest) is a note in ``notes``, not an error: the user may have re-compressed or
    moved it on purpose; the allele check of :func:`sequence_inputs` catches a wrong build."""
    where = Path(h5.filename).parent
    recorded = recorded_fasta(h5)
    if override is not None:
        path = Path(override)
        if not path.is_file():
            raise UserError(f"option {option}: no such FASTA file", path=path)
        rec = fasta_record(path)
    elif recorded is None:
        raise UserError(f"the dataset records no FASTA and this prior reads DNA: ingest with --fasta, "
                        f"or pass {option} FA", path=where)
    else:
        path = Path(recorded["path"])
        if not path.is_file():
            raise UserError(f"the dataset's FASTA {path} is missing (moved or deleted?): pass {option} FA",
                            path=where)
        rec = fasta_record(path)
    if recorded is not None and notes is not None and (rec["bytes"], rec["sha256"]) != (
            recorded["bytes"], recorded["sha256"]):
        notes.append(f"FASTA {rec['path']} differs from the one recorded with the dataset "
                     f"({recorded['path']}, {recorded['bytes']} bytes): its size or checksum is not the same")
    return rec


def sequence_inputs(h5, fasta, length: int, *, notes=None) -> tuple[np.ndarray, np.ndarray]:
    """``(codes (M, length) uint8, alt (M,) uint8)`` for every variant of a dataset.

    ``codes``: the FASTA's bases around each variant (0-3 = A, C, G, T, 4 = other), the
    variant at offset ``length // 2``.  ``alt``: the code of the variant's allele that
    is not the FASTA base at the variant (of ``a1``/``a2``); 4 for indels, an N in the
    FASTA, or when neither allele is the FASTA base; the last are counted, and a note
    (in ``notes``) reports them when more than :data:`ALT_MISMATCH_NOTE` of the SNVs."""
    from ..features.sequence import sequence_codes

    var = h5["variants"]
    chrom, bp = var["chrom"][:], var["bp"][:]
    # sequence_codes puts the window's start at pos - length // 2, so offset length // 2
    # is the variant for any length, odd or even
    codes = sequence_codes(fasta, chrom, bp, window=int(length))
    ref = codes[:, int(length) // 2]
    alt = np.full(len(ref), 4, dtype=np.uint8)
    lut = {b: i for i, b in enumerate("ACGT")}
    a1 = var["a1"].asstr()[:]
    a2 = var["a2"].asstr()[:]
    c1 = np.array([lut.get(a.upper(), 4) if len(a) == 1 else 4 for a in a1], dtype=np.uint8)
    c2 = np.array([lut.get(a.upper(), 4) if len(a) == 1 else 4 for a in a2], dtype=np.uint8)
    snv = (c1 < 4) & (c2 < 4) & (ref < 4)
    alt[snv & (c1 == ref)] = c2[snv & (c1 == ref)]
    alt[snv & (c2 == ref)] = c1[snv & (c2 == ref)]
    mismatch = snv & (c1 != ref) & (c2 != ref)
    n_snv, n_bad = int(snv.sum()), int(mismatch.sum())
    if notes is not None and n_snv and n_bad > ALT_MISMATCH_NOTE * n_snv:
        notes.append(f"{n_bad} of {n_snv} SNVs ({100 * n_bad / n_snv:.1f}%) have neither allele as the FASTA base "
                     f"at their position (a FASTA of another genome build?); their alternative allele is unknown")
    return codes, alt


def variant_batch(h5, dtype="float64", device="cpu", tracks=True, *, sequence_length=0, fasta=None,
                  notes=None) -> dict:
    """The per-variant inputs of a prior for every variant of a dataset.

    ``tracks=False`` leaves out the per-base tracks (``features/window``, the largest
    input): a loader then reads the rows each batch needs (:func:`track_rows`).
    ``sequence_length > 0`` adds ``sequence`` and ``alt`` (:func:`sequence_inputs`) from
    ``fasta`` (a path; None: :func:`resolve_fasta`'s choice), with notes in ``notes``."""
    import torch

    var = h5["variants"]
    freq = var["freq"][:].astype(np.float64)
    batch = {
        "freq": torch.as_tensor(freq, dtype=getattr(torch, dtype), device=device),
        "index": torch.arange(len(freq), device=device),
    }
    scalar = feature_matrix(h5)
    if scalar is not None:
        batch["features"] = torch.as_tensor(scalar, dtype=getattr(torch, dtype), device=device)
    if tracks and "features" in h5 and "window" in h5["features"]:
        # per-base tracks (M x w x T), kept in their stored float16 until a chunk is used
        batch["window"] = torch.as_tensor(h5["features"]["window"][:], device=device)
    if sequence_length > 0:
        if fasta is None:
            fasta = resolve_fasta(h5, notes=notes)["path"]
        codes, alt = sequence_inputs(h5, fasta, int(sequence_length), notes=notes)
        batch["sequence"] = torch.as_tensor(codes, device=device)
        batch["alt"] = torch.as_tensor(alt, device=device)
    return batch


def model_batch(meta, h5, fasta=None, *, notes=None):
    """The inputs of a fitted model's prior (``meta``: its model.json) for every variant
    of an open dataset, for :func:`predict_log_f`: with the DNA (from ``fasta``, else the
    dataset's FASTA) when the prior reads DNA, else None (predict_log_f then reads the
    stored features itself, the tracks chunk by chunk).  A FASTA other than the one the
    model was trained with (another size or checksum) is a note in ``notes``."""
    from ..plugins import lookup

    name = meta["prior"]["name"]
    seq_len = lookup("priors", name)(**meta["prior"].get("options", {})).sequence_length()
    if seq_len == 0:
        if fasta is not None:
            raise UserError(f"option --fasta: prior {name!r} reads no DNA (the FASTA would be ignored)")
        return None
    rec = resolve_fasta(h5, fasta, notes=notes)
    trained = meta.get("fasta")
    if notes is not None and isinstance(trained, dict) and (
            trained.get("bytes"), trained.get("sha256")) != (rec["bytes"], rec["sha256"]):
        notes.append(f"FASTA {rec['path']} differs from the one the model was trained with "
                     f"({trained.get('path')}): its size or checksum is not the same")
    return variant_batch(h5, tracks=False, sequence_length=seq_len, fasta=rec["path"], notes=notes)


def track_rows(h5, lo: int, hi: int):
    """Rows ``[lo, hi)`` of the per-base tracks (a contiguous, chunk-aligned read), or None."""
    import torch

    if "features" not in h5 or "window" not in h5["features"]:
        return None
    return torch.as_tensor(h5["features"]["window"][lo:hi])


def prior_context(batch, init_f=1e-6, track_shape=None):
    """What a prior's module needs to know about the inputs it will get, as a
    :class:`varfx.api.FitContext` (``track_shape``: the stored tracks' shape when they
    are not in ``batch``)."""
    from ..api import FitContext

    n_features = int(batch["features"].shape[1]) if "features" in batch else 0
    shape = tuple(batch["window"].shape) if "window" in batch else track_shape
    window, n_tracks = (int(shape[1]), int(shape[2])) if shape is not None else (0, 0)
    return FitContext(init_f=init_f, n_features=n_features, n_tracks=n_tracks, window=window)


def feature_matrix(h5):
    """The normalised per-variant scalar features written by ingest (M x d), or None."""
    if "features" not in h5 or "scalar" not in h5["features"]:
        return None
    x = h5["features"]["scalar"][:].astype(np.float64)
    return x if x.ndim == 2 and x.shape[1] > 0 else None


def predict_log_f(module, h5, dtype="float64", device="cpu", chunk=1 << 16, batch=None):
    """log f for every variant of an open dataset, in memory-bounded chunks (the
    per-base tracks are read chunk by chunk, never whole)."""
    import torch

    if batch is None or "window" not in batch:
        batch = variant_batch(h5, dtype, device, tracks=False) if batch is None else batch
        with_rows = "features" in h5 and "window" in h5["features"]
    else:
        with_rows = False
    M = batch["freq"].shape[0]
    out = []
    was_training = module.training
    module.eval()
    with torch.no_grad():
        for s in range(0, M, chunk):
            sub = {k: v[s:s + chunk] for k, v in batch.items()}
            if with_rows:
                sub["window"] = track_rows(h5, s, min(s + chunk, M)).to(batch["freq"].device)
            out.append(module(sub).to(torch.float64))
    module.train(was_training)
    return torch.cat(out).cpu().numpy() if out else np.zeros(0)
