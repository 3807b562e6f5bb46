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
model, ``.`` for indels, symbolic alleles, and positions outside the inputs' coverage
(past the end of the FASTA's contig, on a contig a bigWig lacks, where a track has no
data: :meth:`varfx.features.store.NewVariantFeatures.coverage`), counted in ``outside``.

The per-record Python work is kept to reading the few fields needed (chromosome,
position, REF, ALT, AF) and writing the record back; the REF check, the coverage and
the features are computed per batch with numpy (profiled in benchmarks/score.py).
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..errors import UserError

#: more checked records than this fraction whose REF is not the FASTA base: an error
#: (a wrong genome build); fewer are counted in the summary
REF_MISMATCH_MAX = 0.05
#: contigs longer than this cannot be indexed with tabix (.tbi): a CSI index instead
TABIX_MAX_CONTIG = 1 << 29
ACGT = {"A": 0, "C": 1, "G": 2, "T": 3}
#: variants per forward of a prior that reads DNA (each variant is independent in eval);
#: seqcnn's fast eval path runs pieces of its own (FAST_PIECE) within them
DNA_CHUNK = 1024
#: a single base in either case (soft-masked references write lower case) -> its code
BASE = {**ACGT, **{k.lower(): v for k, v in ACGT.items()}}


def _reuse_freed_memory() -> bool:
    """Have malloc keep what a DNA network's forward frees for the next piece
    (:mod:`varfx.nn.heap`): the forward allocates and frees tensors of a few MB per layer,
    and by default each was page-faulted in again (a third of seqcnn's CPU time was system
    time, 0 after this; docs/score-vcf.md, "Performance").  The heap stays at the working
    set of one piece (pieces of one shape), which does not grow with the VCF."""
    from ..nn.heap import keep_freed_memory

    return keep_freed_memory(256 << 20)


def _open_vcf(path, threads=0):
    import pysam

    if not Path(path).is_file():
        raise UserError("no such VCF/BCF file", path=path)
    try:
        vf = pysam.VariantFile(str(path), threads=int(threads))
    except (ValueError, OSError) as exc:
        raise UserError(f"not a readable VCF/BCF with a header ({exc}): expected ##fileformat and a #CHROM line",
                        path=path) from None
    return vf


def _records(vf, path, batch):
    """Batches ``(records, contig names, positions)``, checked sorted (by contig as first
    seen, then position)."""
    seen, cur, last, n = set(), None, 0, 0
    recs, chroms, poss = [], [], []
    it = iter(vf)
    while True:
        try:
            rec = next(it)
        except StopIteration:
            break
        except (OSError, ValueError) as exc:
            raise UserError(f"unreadable after record {n} (truncated or malformed: {exc})", path=path) from None
        n += 1
        chrom, pos = rec.chrom, rec.pos
        if chrom != cur:
            if chrom in seen:
                raise UserError(f"record {n} ({chrom}:{pos}): unsorted, contig {chrom} seen before "
                                "another contig: expected records sorted by contig and position", path=path)
            seen.add(chrom)
            cur, last = chrom, 0
        if pos < last:
            raise UserError(f"record {n} ({chrom}:{pos}): unsorted, after position {last}: expected "
                            "records sorted by position", path=path)
        last = pos
        recs.append(rec)
        chroms.append(chrom)
        poss.append(pos)
        if len(recs) >= batch:
            yield recs, chroms, poss
            recs, chroms, poss = [], [], []
    if recs:
        yield recs, chroms, poss


def _mean_output(meta, module, kind, fasta, notes):
    """The model's mean F over its dataset (for VARFX_ENRICH) and the dataset's mean
    allele frequency (for an ALT without AF)."""
    from ..store.dataset import open_dataset
    from ..store.variants import model_batch, predict_log_f

    with open_dataset(meta["dataset"]) as h5:
        log_f = predict_log_f(module, h5, batch=model_batch(meta, h5, fasta, notes=notes))
        mean_freq = float(np.mean(h5["variants"]["freq"][:]))
    mean_f = float(np.mean(np.exp(log_f))) if kind == "log_f" else float("nan")
    return mean_f, mean_freq


def _output_header(vin, kind, model_dir, version, notes, vcf):
    """The input's header with this model's INFO fields declared once: fields of an
    earlier run (any ``VARFX_*`` INFO and ``##varfx=`` line) are dropped first."""
    old = [k for k in vin.header.info if k.startswith("VARFX_")]
    hdr = vin.header.copy()
    for k in old:
        hdr.info.remove_header(k)
    for r in list(hdr.records):
        if r.key == "varfx":
            r.remove()
    if old:
        notes.append(f"{vcf} already has INFO {', '.join(old)} (an earlier varfx run?): their values are dropped and "
                     "replaced by this model's")
    if kind == "log_f":
        hdr.add_line('##INFO=<ID=VARFX_F,Number=A,Type=Float,Description="varfx prior variance F of the ALT allele">')
        hdr.add_line('##INFO=<ID=VARFX_ENRICH,Number=A,Type=Float,Description="varfx F over the mean F of the '
                     'model over its dataset">')
    else:
        hdr.add_line('##INFO=<ID=VARFX_PCAUSAL,Number=A,Type=Float,Description="varfx MIL model probability '
                     'that the ALT allele is causal">')
    hdr.add_line(f"##varfx=<model={Path(model_dir).resolve()},version={version}>")
    return hdr, old


def run_score_vcf(model_dir, vcf, out, *, fasta=None, annotations=None, batch=10000, threads=0,
                  progress=False, dry_run=False) -> dict:
    """Write ``vcf`` annotated with the model of ``model_dir`` to ``out`` (bgzipped, with
    its index); returns the summary (counts of records, alleles scored and skipped, REF
    checks, the output paths, notes, seconds).  Any error leaves no output and no index.

    ``threads`` > 0 sets torch's intra-op threads (restored afterwards) and htslib's
    (de)compression threads; ``progress`` shows a progress bar on stderr.  Notes (a
    FASTA other than the recorded one, VARFX fields replaced) are printed on stderr.

    ``dry_run``: everything the run checks before it reads the records, then the first
    :data:`DRY_RUN_RECORDS` records scored as the run scores them, written into memory;
    returns the plan (:func:`varfx.store.dry_run.plan`) and writes nothing."""
    import torch

    t_start = time.perf_counter()

    from .. import __version__
    from ..features.sequence import open_fasta
    from ..features.sources import contig_lookup
    from ..features.store import NewVariantFeatures, recorded_features
    from ..plugins import lookup
    from ..store.dataset import open_dataset
    from ..store.model import load_model, model_output
    from ..store.variants import resolve_fasta

    if int(batch) < 1:
        raise UserError(f"option --batch {batch}: expected a positive number of records")
    if int(threads) < 0:
        raise UserError(f"option --threads {threads}: expected 0 (torch's default) or a positive number")
    threads = int(threads)
    meta, module = load_model(model_dir)
    kind = model_output(meta)
    if "dataset" not in meta:
        raise UserError("model.json records no dataset (re-run `varfx fit`)", path=model_dir)
    pname = meta["prior"]["name"]
    seq_len = lookup("priors", pname)(**meta["prior"].get("options", {})).sequence_length()
    notes: list[str] = []
    with open_dataset(meta["dataset"]) as h5:
        plan = recorded_features(h5, annotations)
        fa_path = None
        if seq_len > 0 or fasta is not None:
            fa_path = resolve_fasta(h5, fasta, notes=notes)["path"]
        elif "fasta_path" in h5.attrs and Path(str(h5.attrs["fasta_path"])).is_file():
            fa_path = str(h5.attrs["fasta_path"])  # for the REF check only
    if seq_len > 0:
        _reuse_freed_memory()
    prev_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    vin = fa = feats = None
    try:
        mean_f, mean_freq = _mean_output(meta, module, kind, fasta if seq_len > 0 else None, notes)
        feats = NewVariantFeatures(plan, fa_path if fasta else None) if plan is not None else None
        vin = _open_vcf(vcf, threads)
        hdr, replaced = _output_header(vin, kind, model_dir, __version__, notes, vcf)
        notes = list(dict.fromkeys(notes))  # one FASTA note, not one per reader
        for message in notes:
            print(f"Note: {message}", file=sys.stderr)
        fa = open_fasta(fa_path) if fa_path else None
        known = feats.contigs() if feats is not None else None
        if fa is not None:
            known = (known or set()) | set(contig_lookup(fa.references))
        counts = {"records": 0, "alleles": 0, "scored": 0, "indel": 0, "symbolic": 0, "outside": 0,
                  "ref_checked": 0, "ref_mismatch": 0, "af_missing": 0}
        ctx = dict(module=module, kind=kind, seq_len=seq_len, feats=feats, fa=fa,
                   fa_names=contig_lookup(fa.references) if fa is not None else {},
                   fa_len=dict(zip(fa.references, fa.lengths)) if fa is not None else {},
                   known=known, codes={}, has_af="AF" in vin.header.info, mean_f=mean_f, mean_freq=mean_freq,
                   counts=counts, outside_by={}, replaced=replaced, vcf=vcf)
        if dry_run:
            return _dry_write(vin, hdr, out, ctx, batch=int(batch), threads=threads, fa_path=fa_path,
                              model_dir=model_dir, dataset=meta["dataset"], t_start=t_start, notes=notes)
        summary = _write(vin, hdr, out, ctx, batch=int(batch), threads=threads, progress=progress,
                         fa_path=fa_path)
        # why an input left variants outside its coverage, when its source can say (a table
        # keyed by SNP id covers no variant outside the dataset)
        for e in (feats.ents if feats is not None else []):
            if summary["outside_by"].get(e.name) and hasattr(e.src, "coverage_note"):
                message = e.src.coverage_note(e.path)
                if message and message not in notes:
                    notes.append(message)
                    print(f"Note: {message}", file=sys.stderr)
    finally:
        for h in (vin, fa, feats):
            if h is not None:
                h.close()
        if threads:
            torch.set_num_threads(prev_threads)
    summary["notes"] = notes
    return summary


def _write(vin, hdr, out, ctx, *, batch, threads, progress, fa_path):
    """Stream the records of ``vin`` through :func:`_score_batch` into ``out`` (under a
    temporary name, renamed with its index once complete)."""
    import pysam

    from ..store import _make_parents, _remove_empty
    from ..ui import stage_progress

    counts, vcf = ctx["counts"], ctx["vcf"]
    max_contig = max([int(c.length or 0) for c in vin.header.contigs.values()] + [0])
    out = Path(out)
    # directories made for the output are removed again if it fails (as atomic_path does)
    created = _make_parents(out.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".vcf.gz", dir=out.parent)
    os.close(fd)
    csi = max_contig > TABIX_MAX_CONTIG
    tmp_idx = tmp + (".csi" if csi else ".tbi")
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        with stage_progress(progress) as bar, pysam.VariantFile(tmp, "wz", header=hdr, threads=threads) as vout:
            task = bar.add_task("score-vcf records", total=None, status="") if bar is not None else None
            # the cyclic garbage collector's full passes would walk every object torch
            # and numpy made at import, again and again while a batch's 10^4 records are
            # made (20-40% of the time, measured): they are frozen out of its passes.  It
            # stays on, for the cycles a model's forward leaves (turned off, memory grew
            # by ~0.3 MB/s scoring with seqcnn)
            gc.freeze()
            try:
                for recs, chroms, poss in _records(vin, vcf, batch):
                    _score_batch(recs, chroms, poss, vout, ctx)
                    if bar is not None:
                        rate = counts["records"] / max(time.perf_counter() - t0, 1e-9)
                        bar.update(task, completed=counts["records"], status=f"{rate:,.0f} records/s")
            finally:
                gc.unfreeze()
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
    return {**counts, "outside_by": dict(ctx["outside_by"]), "out": str(out),
            "index": str(out) + (".csi" if csi else ".tbi"), "output": ctx["kind"],
            "mean_f": ctx["mean_f"] if ctx["kind"] == "log_f" else None,
            "replaced_fields": list(ctx["replaced"]), "seconds": round(time.perf_counter() - t0, 6),
            "cpu_seconds": round(time.process_time() - c0, 6)}


#: records score-vcf --dry-run scores (into memory) to time the run and size its output
DRY_RUN_RECORDS = 5000


def _dry_write(vin, hdr, out, ctx, *, batch, threads, fa_path, model_dir, dataset, t_start, notes):
    """score-vcf's dry run: the first :data:`DRY_RUN_RECORDS` records scored and written
    (bgzipped) into an anonymous in-memory file; the records of the whole VCF counted
    exactly when the sample reached its end, else estimated from the bytes the sample
    took of the input file, and the time and output size scaled to them."""
    import contextlib

    import pysam

    from ..store import dry_run as dr

    counts, vcf = ctx["counts"], ctx["vcf"]
    dr.check_writable(out, "the scored VCF")
    size = Path(vcf).stat().st_size
    with open(vcf, "rb") as fh:
        bgzf = fh.read(2) == b"\x1f\x8b"  # a virtual offset (block << 16 | within) to tell()

    def offset():
        v = int(vin.tell())
        return _bgzf_offset(vcf, v) if bgzf else float(v)

    start = offset()
    t_setup = time.perf_counter() - t_start
    with contextlib.ExitStack() as stack:
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("varfx-score-vcf-dry-run")
            stack.callback(os.close, fd)
            target = f"/proc/self/fd/{fd}"
        else:  # not Linux: a temporary directory outside the output's, removed at once
            fd, target = None, str(Path(stack.enter_context(tempfile.TemporaryDirectory())) / "sample.vcf.gz")
        t0 = time.perf_counter()
        with pysam.VariantFile(target, "wz", header=hdr, threads=threads) as vout:
            for recs, chroms, poss in _records(vin, vcf, min(batch, DRY_RUN_RECORDS)):
                _score_batch(recs, chroms, poss, vout, ctx)
                if counts["records"] >= DRY_RUN_RECORDS:
                    break
            end = offset()
            try:
                complete = next(iter(vin), None) is None
            except (OSError, ValueError) as exc:  # the run's message for a file cut short there
                raise UserError(f"unreadable after record {counts['records']} (truncated or malformed: {exc})",
                                path=vcf) from None
        t_sample = time.perf_counter() - t0
        out_bytes = os.fstat(fd).st_size if fd is not None else os.path.getsize(target)
    n = counts["records"]
    if complete:
        total = n
    elif end > start:
        total = max(n, int(round(n * (size - start) / (end - start))))
    else:
        total = None  # the sample took no measurable bytes: the records cannot be estimated
    if counts["ref_checked"] and counts["ref_mismatch"] > REF_MISMATCH_MAX * counts["ref_checked"]:
        what = "" if complete else f" (in the first {n} records)"
        raise UserError(f"{counts['ref_mismatch']} of {counts['ref_checked']} records{what} have a REF that is not "
                        f"the FASTA base ({fa_path}): another genome build? nothing written", path=vcf)
    scale = None if total is None else (total / n if n else 0.0)
    shown = dict(counts, outside_by=dict(ctx["outside_by"]))
    if not complete and scale is not None:
        shown = {k: int(round(v * scale)) for k, v in counts.items()}
        shown["outside_by"] = {k: int(round(v * scale)) for k, v in ctx["outside_by"].items()}
    elif scale is None:
        shown = {"records": None}
    csi = max([int(c.length or 0) for c in vin.header.contigs.values()] + [0]) > TABIX_MAX_CONTIG
    index = str(out) + (".csi" if csi else ".tbi")
    out_est = None if scale is None else float(out_bytes * scale)
    basis = [f"score-vcf --dry-run: the model, its dataset and inputs and the VCF header checked and the model's "
             f"mean F computed ({t_setup:.3g} s, measured); {n:,} records scored into memory ({t_sample:.3g} s, "
             f"{out_bytes:,} bytes bgzipped)"
             + (", the whole VCF" if complete else
                (f", {end - start:,.0f} of the VCF's {size - start:,.0f} bytes of records: the rest scaled by "
                 f"{scale:.4g}" if scale is not None else "; the records could not be estimated")),
             f"the index ({Path(index).name}) is not priced: its time and size are left out",
             f"peak memory: this process's peak, scoring batches of {min(batch, DRY_RUN_RECORDS):,} records"
             + (f" (the run's --batch {batch:,} holds more at a time)" if batch > DRY_RUN_RECORDS else "")]
    return dr.plan("score-vcf", reads=[{"role": "vcf", "path": str(vcf), "bytes": size},
                                       {"role": "model", "path": str(model_dir), "bytes": None},
                                       {"role": "dataset", "path": str(dataset), "bytes": None}],
                   writes=[{"path": str(out), "bytes": out_est, "replaces": Path(out).exists()},
                           {"path": index, "bytes": None, "replaces": Path(index).exists(), "unpriced": True}],
                   counts=shown, counts_exact=complete,
                   sample={"records": n, "seconds": t_sample, "bytes_read": end - start, "bytes_written": out_bytes},
                   seconds_measured=t_setup + t_sample,
                   seconds_estimated=None if scale is None else t_sample * max(scale - 1.0, 0.0),
                   memory_bytes=dr.peak_rss_bytes(), basis=basis, output=ctx["kind"], notes=notes)


def _bgzf_offset(path, voffset: int) -> float:
    """The position in the compressed file of a BGZF virtual offset (the block's offset
    << 16 | the offset within its uncompressed data), with the part within the block
    counted at the block's own compression ratio: a sample of a few blocks is then
    measured to a fraction of a block, not to whole blocks.  (A block: a gzip member
    with the ``BC`` extra field holding its size minus 1, ending in its uncompressed
    size ISIZE.)"""
    import struct

    block, within = voffset >> 16, voffset & 0xFFFF
    if not within:
        return float(block)
    with open(path, "rb") as fh:
        fh.seek(block)
        head = fh.read(18)
        if len(head) < 18 or head[:2] != b"\x1f\x8b" or head[12:14] != b"BC":
            return float(block)  # not the usual BGZF header: to the block
        csize = struct.unpack("<H", head[16:18])[0] + 1
        fh.seek(block + csize - 4)
        tail = fh.read(4)
        usize = struct.unpack("<I", tail)[0] if len(tail) == 4 else 0
    return float(block + csize * min(within / usize, 1.0)) if usize else float(block)


def _contig_code(name, ctx, n):
    """The chromosome code of contig ``name`` (cached); an error when no input of the
    model knows it (record ``n``)."""
    code = ctx["codes"].get(name)
    if code is None:
        from ..genome import chrom_code

        code = chrom_code(name)
        known = ctx["known"]
        if code < 0 or (known is not None and code not in known):
            raise UserError(f"record {n}: contig {name} unknown to every input of the model (its "
                            f"{'FASTA and ' if ctx['fa'] is not None else ''}feature files)", path=ctx["vcf"])
        ctx["codes"][name] = code
    return code


def _score_batch(recs, chroms, poss, vout, ctx):
    """Score one batch of records (``ctx``: the model, its inputs' sources, the counts)
    and write them, in order, to ``vout``."""
    import torch

    from ..features.sequence import sequence_codes

    module, kind, seq_len, feats = ctx["module"], ctx["kind"], ctx["seq_len"], ctx["feats"]
    fa, fa_len, fa_names, counts, vcf = ctx["fa"], ctx["fa_len"], ctx["fa_names"], ctx["counts"], ctx["vcf"]
    has_af, mean_f, mean_freq = ctx["has_af"], ctx["mean_f"], ctx["mean_freq"]
    n, first = len(recs), counts["records"] + 1
    code_of = {c: _contig_code(c, ctx, first + chroms.index(c)) for c in dict.fromkeys(chroms)}
    rec_code = np.fromiter((code_of[c] for c in chroms), dtype=np.int64, count=n)
    rec_pos = np.fromiter(poss, dtype=np.int64, count=n)
    counts["records"] += n
    # per ALT: the SNVs' (record, ALT index, ALT base code, frequency); the one pass in
    # Python, kept to dictionary look-ups (an ALT that is one base A/C/G/T in either case
    # is a key of BASE; anything else is a symbolic allele or an indel)
    ri, aj, ac, fq, missing = [], [], [], [], []
    ref_codes = [-1] * n  # the REF base of single-base ACGT REFs
    n_alt = [0] * n
    n_alleles = n_symbolic = n_indel = 0
    drop = ctx["replaced"]
    for i, rec in enumerate(recs):
        if drop:
            for k in drop:
                if k in rec.info:
                    del rec.info[k]
        alts = rec.alts
        if not alts:
            continue
        rc = BASE.get(rec.ref, -1)
        ref_codes[i] = rc
        n_alt[i] = len(alts)
        n_alleles += len(alts)
        af = None
        for j, alt in enumerate(alts):
            a = BASE.get(alt, -1)
            if a < 0 or rc < 0:
                if alt[0] == "<" or alt in ("*", ".") or "[" in alt or "]" in alt:
                    n_symbolic += 1
                else:
                    n_indel += 1
                continue
            if af is None:
                af = rec.info.get("AF") if has_af else None
                if af is None:
                    af = ()
                elif not isinstance(af, tuple):
                    af = (af,)
            f = af[j] if j < len(af) else None
            if f is None:
                missing.append(len(fq))
                f = mean_freq
            ri.append(i)
            aj.append(j)
            ac.append(a)
            fq.append(f)
    counts["alleles"] += n_alleles
    counts["symbolic"] += n_symbolic
    counts["indel"] += n_indel
    counts["af_missing"] += len(missing)
    ref_code = np.array(ref_codes, dtype=np.int64)
    fq = np.array(fq, dtype=np.float64)
    bad = np.flatnonzero(~((fq >= 0) & (fq <= 1)))  # NaN fails both
    if len(bad):
        i = ri[int(bad[0])]
        raise UserError(f"record {first + i} ({chroms[i]}:{poss[i]}): INFO AF {fq[bad[0]]}: expected a "
                        "frequency in [0, 1]", path=vcf)
    # the REF check, on records with a single-base REF on a contig of the FASTA
    length = np.zeros(n, dtype=np.int64)  # of the record's FASTA contig (0: not in the FASTA)
    if fa is not None:
        for c in set(code_of.values()):
            if c in fa_names:
                length[rec_code == c] = fa_len[fa_names[c]]
    if fa is not None:
        chk = np.flatnonzero((ref_code >= 0) & (rec_pos <= length))
        if len(chk):
            base = sequence_codes(fa, rec_code[chk], rec_pos[chk], window=1)[:, 0]
            counts["ref_checked"] += len(chk)
            counts["ref_mismatch"] += int((base != ref_code[chk]).sum())
    ri = np.asarray(ri, dtype=np.int64)
    aj = np.asarray(aj, dtype=np.int64)
    ac = np.asarray(ac, dtype=np.uint8)
    # the inputs' coverage: an allele some input does not cover gets "."
    ok = None
    if len(ri):
        chrom, pos = rec_code[ri], rec_pos[ri]
        ok = np.ones(len(ri), dtype=bool)
        cover = {}
        if fa is not None:
            cover["reference"] = (pos >= 1) & (pos <= length[ri])
        if feats is not None:
            cover.update(feats.coverage(chrom, pos))
        for name, m in cover.items():
            bad = int((~m).sum())
            if bad:
                ctx["outside_by"][name] = ctx["outside_by"].get(name, 0) + bad
            ok &= m
        counts["outside"] += int((~ok).sum())
        if not ok.all():
            ri, aj, ac, fq = ri[ok], aj[ok], ac[ok], fq[ok]
    values = [None] * n
    if len(ri):
        chrom, pos = rec_code[ri], rec_pos[ri]
        b = {"freq": torch.as_tensor(fq), "index": torch.arange(len(ri))}
        if feats is not None:
            for k, v in feats.compute(chrom, pos, fq, covered=ok).items():
                b[k] = torch.as_tensor(v)
        inverse = None
        if seq_len > 0:
            # a network whose output depends on the DNA alone (batch_inputs): the ALTs of
            # one position, and records at one position (sorted, so adjacent), are one
            # variant to it, scored once
            key = (chrom << 32) | pos
            if set(getattr(module, "batch_inputs", ("sequence", "alt"))) <= {"sequence"}:
                if len(key) > 1 and bool((key[1:] == key[:-1]).any()):
                    _, first_at, inverse = np.unique(key, return_index=True, return_inverse=True)
                    b = {k: v[torch.as_tensor(first_at)] for k, v in b.items()}
                    chrom, pos, key = chrom[first_at], pos[first_at], key[first_at]
            b["sequence"] = torch.as_tensor(sequence_codes(fa, chrom, pos, window=int(seq_len)))
            b["alt"] = torch.as_tensor(ac if inverse is None else ac[first_at])
            # where each sequence lies (one coordinate per base within a contig): a network
            # may compute what overlapping windows share once (seqcnn's first layers)
            b["locus"] = torch.as_tensor(key)
        with torch.inference_mode():
            if seq_len > 0:
                # a DNA network in pieces: bounded activations (a network may split them
                # further: seqcnn's fast path runs 128 variants at a time, whose activations
                # stay in the caches; docs/benchmarks.md, "score-vcf throughput")
                n_in = len(b["sequence"])
                parts = [module({k: v[a:a + DNA_CHUNK] for k, v in b.items()}).to(torch.float64)
                         for a in range(0, n_in, DNA_CHUNK)]
                logit = torch.cat(parts)
                if inverse is not None:
                    logit = logit[torch.as_tensor(inverse.reshape(-1))]
                    chrom, pos = rec_code[ri], rec_pos[ri]
            else:
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
            raise UserError(f"the model gives a non-finite value for {chroms[ri[k]]}:{pos[k]}; "
                            "nothing written", path=vcf)
        # per record, the ALTs' values (None: ".") and, for F, the enrichment
        second = (y / mean_f) if kind == "log_f" else y
        for i, j, v, e in zip(ri.tolist(), aj.tolist(), y.tolist(), second.tolist()):
            if values[i] is None:
                values[i] = ([None] * n_alt[i], [None] * n_alt[i])
            values[i][0][j] = v
            values[i][1][j] = e
        counts["scored"] += len(ri)
    header = vout.header
    write = vout.write
    for rec, vals in zip(recs, values):
        rec.translate(header)
        if vals is not None:
            if kind == "log_f":
                rec.info["VARFX_F"] = vals[0]
                rec.info["VARFX_ENRICH"] = vals[1]
            else:
                rec.info["VARFX_PCAUSAL"] = vals[0]
        write(rec)
