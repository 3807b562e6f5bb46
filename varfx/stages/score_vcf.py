"""``varfx score-vcf``: annotate a VCF/BCF with what a fitted model predicts.

Records are streamed from pysam in batches of ``batch`` records; for each batch the
prior's inputs are computed for every (record, ALT) SNV: the allele frequency (INFO
``AF`` of that ALT when present; else the mean frequency of the model's dataset, the
value a missing frequency is filled with by the ``architecture`` feature), the scalar
features and per-base tracks from the sources recorded in the dataset's features
(normalised with the recorded raw mean/sd, stored in the same precision as at ingest),
and the reference DNA for a prior that reads it.  Only the current batch is held.

Written: ``VARFX_F`` (Number=A) and ``VARFX_ENRICH`` (F over the mean F of the model over
its dataset) for a likelihood-trained prior, ``VARFX_PCAUSAL`` (Number=A) for a MIL
model, ``.`` for indels, symbolic alleles, and positions past the reference contig.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import UserError

#: more checked records than this fraction whose REF is not the FASTA base: an error
#: (a wrong genome build); fewer are counted in the summary
REF_MISMATCH_MAX = 0.05
#: contigs longer than this cannot be indexed with tabix (.tbi): a CSI index instead
TABIX_MAX_CONTIG = 1 << 29
ACGT = {"A": 0, "C": 1, "G": 2, "T": 3}


def _open_vcf(path):
    import pysam

    if not Path(path).is_file():
        raise UserError("no such VCF/BCF file", path=path)
    try:
        vf = pysam.VariantFile(str(path))
    except (ValueError, OSError) as exc:
        raise UserError(f"not a readable VCF/BCF with a header ({exc}): expected ##fileformat and a #CHROM line",
                        path=path) from None
    return vf


def _records(vf, path, batch):
    """Batches of records, checked sorted (by contig as first seen, then position)."""
    seen, cur, last, n = set(), None, 0, 0
    out = []
    it = iter(vf)
    while True:
        try:
            rec = next(it)
        except StopIteration:
            break
        except (OSError, ValueError) as exc:
            raise UserError(f"unreadable after record {n} (truncated or malformed: {exc})", path=path) from None
        n += 1
        if rec.chrom != cur:
            if rec.chrom in seen:
                raise UserError(f"record {n} ({rec.chrom}:{rec.pos}): unsorted, contig {rec.chrom} seen before "
                                "another contig: expected records sorted by contig and position", path=path)
            seen.add(rec.chrom)
            cur, last = rec.chrom, 0
        if rec.pos < last:
            raise UserError(f"record {n} ({rec.chrom}:{rec.pos}): unsorted, after position {last}: expected "
                            "records sorted by position", path=path)
        last = rec.pos
        out.append(rec)
        if len(out) >= batch:
            yield out
            out = []
    if out:
        yield out


def _mean_output(meta, module, kind, fasta):
    """The model's mean F over its dataset (for VARFX_ENRICH)."""
    from ..store.dataset import open_dataset
    from ..store.variants import model_batch, predict_log_f

    with open_dataset(meta["dataset"]) as h5:
        log_f = predict_log_f(module, h5, batch=model_batch(meta, h5, fasta))
        mean_freq = float(np.mean(h5["variants"]["freq"][:]))
    mean_f = float(np.mean(np.exp(log_f))) if kind == "log_f" else float("nan")
    return mean_f, mean_freq


def run_score_vcf(model_dir, vcf, out, *, fasta=None, annotations=None, batch=10000) -> dict:
    """Write ``vcf`` annotated with the model of ``model_dir`` to ``out`` (bgzipped, with
    its index); returns the summary (counts of records, alleles scored and skipped, REF
    checks, the output paths).  Any error leaves no output and no index."""
    import pysam

    from .. import __version__
    from ..features.sequence import open_fasta
    from ..features.sources import contig_lookup
    from ..features.store import NewVariantFeatures, recorded_features
    from ..plugins import lookup
    from ..store.dataset import open_dataset
    from ..store.model import load_model, model_output
    from ..store import _make_parents, _remove_empty
    from ..store.variants import resolve_fasta

    if int(batch) < 1:
        raise UserError(f"option --batch {batch}: expected a positive number of records")
    meta, module = load_model(model_dir)
    kind = model_output(meta)
    if "dataset" not in meta:
        raise UserError("model.json records no dataset (re-run `varfx fit`)", path=model_dir)
    pname = meta["prior"]["name"]
    seq_len = lookup("priors", pname)(**meta["prior"].get("options", {})).sequence_length()
    with open_dataset(meta["dataset"]) as h5:
        plan = recorded_features(h5, annotations)
        fa_path = None
        if seq_len > 0 or fasta is not None:
            fa_path = resolve_fasta(h5, fasta)["path"]
        elif "fasta_path" in h5.attrs and Path(str(h5.attrs["fasta_path"])).is_file():
            fa_path = str(h5.attrs["fasta_path"])  # for the REF check only
    mean_f, mean_freq = _mean_output(meta, module, kind, fasta if seq_len > 0 else None)
    feats = NewVariantFeatures(plan, fa_path if fasta else None) if plan is not None else None

    vin = _open_vcf(vcf)
    hdr = vin.header.copy()
    if kind == "log_f":
        hdr.add_line('##INFO=<ID=VARFX_F,Number=A,Type=Float,Description="varfx prior variance F of the ALT allele">')
        hdr.add_line('##INFO=<ID=VARFX_ENRICH,Number=A,Type=Float,Description="varfx F over the mean F of the '
                     'model over its dataset">')
    else:
        hdr.add_line('##INFO=<ID=VARFX_PCAUSAL,Number=A,Type=Float,Description="varfx MIL model probability '
                     'that the ALT allele is causal">')
    hdr.add_line(f"##varfx=<model={Path(model_dir).resolve()},version={__version__}>")
    has_af = "AF" in vin.header.info

    fa = open_fasta(fa_path) if fa_path else None
    fa_len = dict(zip(fa.references, fa.lengths)) if fa is not None else {}
    fa_names = contig_lookup(fa.references) if fa is not None else {}
    counts = {"records": 0, "alleles": 0, "scored": 0, "indel": 0, "symbolic": 0, "outside": 0,
              "ref_checked": 0, "ref_mismatch": 0, "af_missing": 0}
    max_contig = max([int(c.length or 0) for c in vin.header.contigs.values()] + [0])
    out = Path(out)
    # directories made for the output are removed again if it fails (as atomic_path does)
    created = _make_parents(out.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".vcf.gz", dir=out.parent)
    os.close(fd)
    csi = max_contig > TABIX_MAX_CONTIG
    tmp_idx = tmp + (".csi" if csi else ".tbi")
    try:
        ctx = dict(module=module, kind=kind, seq_len=seq_len, feats=feats, fa=fa, fa_len=fa_len,
                   fa_names=fa_names, has_af=has_af, mean_f=mean_f, mean_freq=mean_freq, counts=counts, vcf=vcf)
        with pysam.VariantFile(tmp, "wz", header=hdr) as vout:
            for recs in _records(vin, vcf, int(batch)):
                _score_batch(recs, vout, ctx)
        if counts["ref_checked"] and counts["ref_mismatch"] > REF_MISMATCH_MAX * counts["ref_checked"]:
            raise UserError(f"{counts['ref_mismatch']} of {counts['ref_checked']} records have a REF that is not the "
                            f"FASTA base ({fa_path}): another genome build? nothing written", path=vcf)
        pysam.tabix_index(tmp, preset="vcf", force=True, csi=csi, index=tmp_idx)
        os.replace(tmp, out)
        os.replace(tmp_idx, str(out) + (".csi" if csi else ".tbi"))
    except BaseException:
        for p in (tmp, tmp_idx):
            if os.path.exists(p):
                os.unlink(p)
        _remove_empty(created)
        raise
    finally:
        vin.close()
        if fa is not None:
            fa.close()
    counts.update({"out": str(out), "index": str(out) + (".csi" if csi else ".tbi"), "output": kind,
                   "mean_f": mean_f if kind == "log_f" else None})
    return counts


def _score_batch(recs, vout, ctx):
    """Score one batch of records (``ctx``: the model, its inputs' sources, the counts)
    and write them, in order, to ``vout``."""
    import torch

    from ..features.sequence import sequence_codes
    from ..genome import chrom_code

    module, kind, seq_len, feats = ctx["module"], ctx["kind"], ctx["seq_len"], ctx["feats"]
    fa, fa_len, fa_names, counts, vcf = ctx["fa"], ctx["fa_len"], ctx["fa_names"], ctx["counts"], ctx["vcf"]
    has_af, mean_f, mean_freq = ctx["has_af"], ctx["mean_f"], ctx["mean_freq"]
    rows = []  # (record index, alt index, chrom code, pos, alt code, freq)
    for i, rec in enumerate(recs):
        counts["records"] += 1
        code = chrom_code(rec.chrom)
        if code < 0 or (fa is not None and code not in fa_names):
            raise UserError(f"record {counts['records']}: contig {rec.chrom} unknown to the model's "
                            f"{'FASTA' if fa is not None else 'features'}", path=vcf)
        ref = (rec.ref or "").upper()
        alts = rec.alts or ()
        inside = fa is None or rec.pos <= fa_len[fa_names[code]]
        if fa is not None and inside and len(ref) == 1 and ref in ACGT:
            base = fa.fetch(fa_names[code], rec.pos - 1, rec.pos).upper()
            counts["ref_checked"] += 1
            counts["ref_mismatch"] += int(base != ref)
        af = rec.info.get("AF") if has_af else None
        if af is not None and not isinstance(af, tuple):
            af = (af,)
        for j, alt in enumerate(alts):
            counts["alleles"] += 1
            if alt.startswith("<") or alt in ("*", ".") or "[" in alt or "]" in alt:
                counts["symbolic"] += 1
                continue
            if len(ref) != 1 or len(alt) != 1 or ref not in ACGT or alt.upper() not in ACGT:
                counts["indel"] += 1
                continue
            if not inside:
                counts["outside"] += 1
                continue
            f = af[j] if af is not None and j < len(af) and af[j] is not None else None
            if f is None:
                counts["af_missing"] += 1
                f = mean_freq
            elif not (np.isfinite(f) and 0 <= f <= 1):
                raise UserError(f"record {counts['records']} ({rec.chrom}:{rec.pos}): INFO AF {f}: expected a "
                                "frequency in [0, 1]", path=vcf)
            rows.append((i, j, code, rec.pos, ACGT[alt.upper()], float(f)))
    values = {}
    if rows:
        r = np.array([x[:5] for x in rows], dtype=np.int64)
        freq = np.array([x[5] for x in rows])
        chrom, pos = r[:, 2], r[:, 3]
        b = {"freq": torch.as_tensor(freq), "index": torch.arange(len(rows))}
        if feats is not None:
            for k, v in feats.compute(chrom, pos, freq).items():
                b[k] = torch.as_tensor(v)
        if seq_len > 0:
            b["sequence"] = torch.as_tensor(sequence_codes(fa, chrom, pos, window=int(seq_len)))
            b["alt"] = torch.as_tensor(r[:, 4].astype(np.uint8))
        with torch.no_grad():
            logit = module(b).to(torch.float64)
        # a logit's probability in float64 (torch.sigmoid is stable at both tails)
        y = (torch.sigmoid(logit) if kind == "logit" else logit).cpu().numpy()
        if kind == "log_f":
            with np.errstate(over="ignore"):
                y = np.exp(y)
            bad = ~(np.isfinite(y) & (y >= 0))
        else:
            bad = np.isnan(y)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise UserError(f"the model gives a non-finite value for {recs[rows[k][0]].chrom}:{rows[k][3]}; "
                            "nothing written", path=vcf)
        for (i, j, *_), v in zip(rows, y):
            values[(i, j)] = float(v)
        counts["scored"] += len(rows)
    for i, rec in enumerate(recs):
        rec.translate(vout.header)
        n = len(rec.alts or ())
        vals = tuple(values.get((i, j)) for j in range(n))
        if n and any(v is not None for v in vals):
            if kind == "log_f":
                rec.info["VARFX_F"] = vals
                rec.info["VARFX_ENRICH"] = tuple(None if v is None else v / mean_f for v in vals)
            else:
                rec.info["VARFX_PCAUSAL"] = vals
        vout.write(rec)
