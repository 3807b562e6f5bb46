"""varfx score-vcf: a VCF annotated with the model's F equals what `varfx score` gives for
the same variants; header declarations, untouched fields, multi-allelic records, and the
bad inputs that must fail with one line and no output."""

import gzip
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from varfx.cli import cli
from varfx.testing.features import write_bed, write_bigwig, write_fasta

from _data import write_subset


def run(args, code=0):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exit_code == code, r.output
    return r


@pytest.fixture(scope="module")
def glm(tmp_path_factory):
    """A GLM model on bigWig + BED + FASTA features of 300 chr22 variants, and the
    dataset's variants as (chrom, bp, ref, alt, af): REF is the FASTA base (a2)."""
    tmp = tmp_path_factory.mktemp("svcf")
    prefix, ss = write_subset(tmp / "in", 0, 300)
    bim = [line.split() for line in open(f"{prefix}.bim")]
    bp = np.array([int(b[3]) for b in bim])
    lo, hi = int(bp.min()) - 500, int(bp.max()) + 500
    rng = np.random.default_rng(0)
    vals = np.full(hi, np.nan)
    vals[lo:hi] = rng.gamma(2.0, 1.0, hi - lo)
    write_bigwig(tmp / "signal.bw", {"chr22": vals})
    write_bed(tmp / "peaks.bed", [("chr22", int(s), int(s) + 300) for s in rng.integers(lo, hi, 100)])
    seq = list(rng.choice(list("ACGT"), hi))
    for b in bim:
        if len(b[5]) == 1:
            seq[int(b[3]) - 1] = b[5]  # the reference base is the .bim A2 allele
    write_fasta(tmp / "ref.fa", {"chr22": "".join(seq)})
    (tmp / "manifest.tsv").write_text("name\tpath\nsignal\tsignal.bw\npeaks\tpeaks.bed\n")
    ds = tmp / "ds"
    run(["ingest", "--sumstats", ss, "--ld", prefix, "--annotations", tmp / "manifest.tsv", "--fasta",
         tmp / "ref.fa", "--feature-window", 32, "-o", ds, "--json"])
    run(["precompute-ld", ds, "--window-kb", 500, "--flank-kb", 100, "--json"])
    model = tmp / "m"
    run(["fit", ds, "--prior", "glm", "--alpha", "learn", "--sigma2", 1, "--holdout-chroms", "none",
         "--epochs", 2, "-o", model])
    run(["score", model, ds, "-o", tmp / "score.tsv"])
    with h5py.File(ds / "dataset.h5", "r") as h5:
        v = h5["variants"]
        rows = list(zip(v["snp"].asstr()[:], v["chrom"][:], v["bp"][:], v["a2"].asstr()[:], v["a1"].asstr()[:],
                        v["freq"][:]))
    return tmp, model, rows


def write_vcf(path, lines, header=True, contig="22", length=51304566):
    head = ("##fileformat=VCFv4.2\n"
            f"##contig=<ID={contig},length={length}>\n"
            '##INFO=<ID=AF,Number=A,Type=Float,Description="ALT frequency">\n'
            '##INFO=<ID=KEEP,Number=1,Type=String,Description="an untouched field">\n'
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ts1\n")
    with open(path, "w") as fh:
        fh.write((head if header else "") + "".join(line + "\n" for line in lines))
    return path


def read_out(path):
    import pysam

    with pysam.VariantFile(str(path)) as vf:
        return str(vf.header), [r for r in vf]


def test_values_equal_varfx_score_and_fields_kept(glm, tmp_path):
    tmp, model, rows = glm
    score = {line.split("\t")[0]: float(line.split("\t")[3])
             for line in (tmp / "score.tsv").read_text().splitlines()[1:]}
    snv = [r for r in rows if len(r[3]) == 1 and len(r[4]) == 1][:120]
    lines = [f"{c}\t{b}\t{s}\t{ref}\t{alt}\t50\tPASS\tAF={af:.17g};KEEP=x{i}\tGT\t0|1"
             for i, (s, c, b, ref, alt, af) in enumerate(snv)]
    # a multi-allelic record: the first ALT is the dataset's, the second an indel
    s, c, b, ref, alt, af = snv[0]
    lines.insert(1, f"{c}\t{b}\tmulti\t{ref}\t{alt},{ref}AC\t.\t.\tAF={af:.17g},0.01\tGT\t1/2")
    vcf = write_vcf(tmp_path / "in.vcf", lines)
    out = tmp_path / "out.vcf.gz"
    summary = json.loads(run(["score-vcf", model, vcf, "-o", out, "--batch", 7, "--json"]).stdout)
    assert summary["records"] == len(lines) and summary["indel"] == 1 and summary["ref_mismatch"] == 0
    assert (tmp_path / "out.vcf.gz.tbi").is_file()
    header, recs = read_out(out)
    assert '##INFO=<ID=VARFX_F,Number=A,Type=Float' in header
    assert '##INFO=<ID=VARFX_ENRICH,Number=A,Type=Float' in header and "##varfx=<model=" in header
    assert [r.id for r in recs] == [line.split("\t")[2] for line in lines]  # order kept
    mean_f = summary["mean_f"]
    assert mean_f == pytest.approx(np.mean(list(score.values())), rel=1e-5)
    for r, line in zip(recs, lines):
        assert r.info["KEEP"] == line.split("KEEP=")[1].split("\t")[0] if "KEEP" in line else True
        assert r.qual == (None if line.split("\t")[5] == "." else 50.0)
        assert r.samples["s1"]["GT"] in ((0, 1), (1, 2))
        if r.id == "multi":
            f = r.info["VARFX_F"]
            assert len(f) == 2 and f[1] is None
            assert f[0] == pytest.approx(score[snv[0][0]], rel=1e-5)
            continue
        assert r.info["VARFX_F"][0] == pytest.approx(score[r.id], rel=1e-5)
        assert r.info["VARFX_ENRICH"][0] == pytest.approx(score[r.id] / mean_f, rel=1e-5)


def test_chr_prefix_and_missing_af(glm, tmp_path):
    tmp, model, rows = glm
    s, c, b, ref, alt, af = [r for r in rows if len(r[3]) == 1 and len(r[4]) == 1][3]
    vcf = write_vcf(tmp_path / "in.vcf", [f"chr{c}\t{b}\t{s}\t{ref}\t{alt}\t.\t.\t.\tGT\t0|0",
                                          f"chr{c}\t{b + 1}\tsv\tN\t<DEL>\t.\t.\t.\tGT\t0|0"], contig="chr22")
    summary = json.loads(run(["score-vcf", model, vcf, "-o", tmp_path / "o.vcf.gz", "--json"]).stdout)
    assert summary["af_missing"] == 1 and summary["symbolic"] == 1 and summary["scored"] == 1
    _, recs = read_out(tmp_path / "o.vcf.gz")
    assert np.isfinite(recs[0].info["VARFX_F"][0]) and "VARFX_F" not in recs[1].info


def _bad(glm, tmp_path, vcf, match):
    tmp, model, rows = glm
    out = tmp_path / "bad.vcf.gz"
    r = run(["score-vcf", model, vcf, "-o", out], code=1)
    msg = r.output.strip()
    assert "Traceback" not in msg and len(msg.splitlines()) == 1 and match in msg, msg
    assert not out.exists() and not (tmp_path / "bad.vcf.gz.tbi").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bad")]


def test_bad_vcfs(glm, tmp_path):
    tmp, model, rows = glm
    snv = [r for r in rows if len(r[3]) == 1 and len(r[4]) == 1]
    good = [f"{c}\t{b}\t{s}\t{ref}\t{alt}\t.\t.\t.\tGT\t0|1" for s, c, b, ref, alt, af in snv[:40]]
    _bad(glm, tmp_path, write_vcf(tmp_path / "nohead.vcf", good, header=False), "header")
    # an output directory made for a failed run is removed again
    unsorted = write_vcf(tmp_path / "unsorted0.vcf", good[::-1])
    r = run(["score-vcf", model, unsorted, "-o", tmp_path / "new" / "o.vcf.gz"], code=1)
    assert not (tmp_path / "new").exists(), r.output
    _bad(glm, tmp_path, write_vcf(tmp_path / "unsorted.vcf", good[::-1]), "unsorted")
    _bad(glm, tmp_path, write_vcf(tmp_path / "contig.vcf", ["7\t100\tx\tA\tC\t.\t.\t.\tGT\t0|1"], contig="7"),
         "contig 7")
    # REF swapped with ALT on every record: REF is not the FASTA base
    swapped = [f"{c}\t{b}\t{s}\t{alt}\t{ref}\t.\t.\t.\tGT\t0|1" for s, c, b, ref, alt, af in snv[:40]]
    _bad(glm, tmp_path, write_vcf(tmp_path / "ref.vcf", swapped), "REF")
    # a bgzipped VCF cut in the middle
    import pysam

    full = write_vcf(tmp_path / "full.vcf", good * 1)
    pysam.tabix_compress(str(full), str(tmp_path / "full.vcf.gz"), force=True)
    data = (tmp_path / "full.vcf.gz").read_bytes()
    (tmp_path / "trunc.vcf.gz").write_bytes(data[: len(data) * 2 // 3])
    _bad(glm, tmp_path, tmp_path / "trunc.vcf.gz", "trunc")


def test_seqcnn_reads_dna(glm, tmp_path, monkeypatch):
    """A prior that reads DNA (seqcnn) gets it from the dataset's FASTA: VARFX_F equals
    `varfx score`'s F (the network run in pieces of 7 variants, so that pieces meet)."""
    import varfx.stages.score_vcf as stage

    monkeypatch.setattr(stage, "DNA_CHUNK", 7)
    tmp, _, rows = glm
    model = tmp_path / "seq"
    run(["fit", tmp / "ds", "--prior", "seqcnn", "-p", "window=64", "-p", "width=4", "-p", "tower=2", "-p", "crop=2",
         "--alpha", 0, "--sigma2", 1, "--holdout-chroms", "none", "--epochs", 1, "-o", model])
    snv = [r for r in rows if len(r[3]) == 1 and len(r[4]) == 1][:60]
    lines = [f"{c}\t{b}\t{s}\t{ref}\t{alt}\t.\t.\tAF={af:.17g}\tGT\t0|1" for s, c, b, ref, alt, af in snv]
    vcf = write_vcf(tmp_path / "in.vcf", lines)
    run(["score", model, tmp / "ds", "-o", tmp_path / "score.tsv"])
    want = {line.split("\t")[0]: float(line.split("\t")[3])
            for line in (tmp_path / "score.tsv").read_text().splitlines()[1:]}
    out = tmp_path / "o.vcf.gz"
    summary = json.loads(run(["score-vcf", model, vcf, "-o", out, "--json"]).stdout)
    assert summary["output"] == "log_f" and summary["scored"] == len(lines)
    got = np.array([r.info["VARFX_F"][0] for r in read_out(out)[1]])
    np.testing.assert_allclose(got, [want[s] for s, *_ in snv], rtol=1e-5)
    assert np.std(got) > 0  # a value per variant, not one for all
    # both commands run the network's fast eval path; the reference path (the modules
    # themselves, varfx.nn.seqcnn.FAST_EVAL off) writes the same values to float32 round-off
    import varfx.nn.seqcnn as seqcnn

    monkeypatch.setattr(seqcnn, "FAST_EVAL", False)
    run(["score-vcf", model, vcf, "-o", tmp_path / "ref.vcf.gz", "--json"])
    ref = np.array([r.info["VARFX_F"][0] for r in read_out(tmp_path / "ref.vcf.gz")[1]])
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    monkeypatch.setattr(seqcnn, "FAST_EVAL", True)
    # score-vcf passes each sequence's locus, so that the network computes the first layers
    # once over overlapping windows (forced here: this model's short windows rarely pay):
    # the same values
    monkeypatch.setattr(seqcnn, "SHARE_MAX", float("inf"))
    shared = []
    real_shared = seqcnn.SeqCNNModule._shared_block_input
    monkeypatch.setattr(seqcnn.SeqCNNModule, "_shared_block_input",
                        lambda self, *a: shared.append(real_shared(self, *a)) or shared[-1])
    run(["score-vcf", model, vcf, "-o", tmp_path / "share.vcf.gz", "--json"])
    assert any(x is not None for x in shared)  # (the dataset's mean F is scored without loci)
    np.testing.assert_allclose([r.info["VARFX_F"][0] for r in read_out(tmp_path / "share.vcf.gz")[1]], ref,
                               rtol=1e-5)

    # the model reads the reference DNA only (allele_aware off): a second record at a
    # position, and a multi-allelic record's ALTs, are one network input each, scored once,
    # and get the position's value
    import varfx.features.sequence as sequence

    other = {"A": "C", "C": "G", "G": "T", "T": "A"}
    dup = []
    for k, (s, c, b, ref_b, alt, af) in enumerate(snv[:12]):
        dup.append(f"{c}	{b}	{s}	{ref_b}	{alt}	.	.	AF={af:.17g}	GT	0|1")
        if k % 2:
            dup.append(f"{c}	{b}	{s}	{ref_b}	{other[alt]}	.	.	AF=0.01	GT	0|1")
        else:
            dup.append(f"{c}	{b}	{s}	{ref_b}	{alt},{other[alt]}	.	.	AF={af:.17g},0.01	GT	1|2")
    windows = []
    real = sequence.sequence_codes

    def spy(fa, chrom, pos, *, window):
        if window > 1:
            windows.append(len(pos))
        return real(fa, chrom, pos, window=window)

    monkeypatch.setattr(sequence, "sequence_codes", spy)
    vcf2 = write_vcf(tmp_path / "dup.vcf", dup)
    summary = json.loads(run(["score-vcf", model, vcf2, "-o", tmp_path / "dup.vcf.gz", "--json"]).stdout)
    assert summary["scored"] == summary["alleles"] == 12 + 12 + 6
    # one DNA window per position (the earlier reads are the dataset's, for the mean F)
    assert windows[-1] == 12
    for r in read_out(tmp_path / "dup.vcf.gz")[1]:
        np.testing.assert_allclose(r.info["VARFX_F"], [want[r.id]] * len(r.alts), rtol=1e-5)


def test_bags_trained_mil_model_writes_pcausal_equal_to_varfx_score(tmp_path):
    """A real MIL model (`varfx bags`, then `fit --objective mil` on seqcnn): VARFX_PCAUSAL
    is `varfx score`'s P_CAUSAL for the same variants, and no VARFX_F is declared."""
    from varfx.testing.mil_sim import simulate_mil

    sim = simulate_mil(tmp_path / "sim", n_chroms=2, blocks_per_chrom=6, variants_per_block=12, n_ref=60,
                       seed=3)
    ds = tmp_path / "ds"
    run(["ingest", "--sumstats", sim.sumstats, "--ld", sim.panel, "--fasta", sim.fasta, "--feature-window", 16,
         "-o", ds, "--json"])
    assert json.loads(run(["bags", ds, "--min-bag-size", 3]).stdout)["bags"] > 0
    model = tmp_path / "mil"
    run(["fit", ds, "--prior", "seqcnn", "--objective", "mil", "-p", "window=64", "-p", "width=4", "-p", "tower=2",
         "-p", "crop=2", "--holdout-chroms", "none", "--epochs", 1, "-o", model])
    run(["score", model, ds, "-o", tmp_path / "score.tsv"])
    score = [line.split("\t") for line in (tmp_path / "score.tsv").read_text().splitlines()]
    assert score[0][:4] == ["SNP", "CHR", "BP", "P_CAUSAL"]
    want = {(int(r[1]), int(r[2])): float(r[3]) for r in score[1:]}
    bim = [line.split() for line in open(f"{sim.panel}.bim")]  # A2 is the FASTA base, A1 the other
    lines = [f"{c}\t{bp}\t{snp}\t{a2}\t{a1}\t.\t.\t.\tGT\t0|1" for c, snp, _, bp, a1, a2 in bim]
    head = ("##fileformat=VCFv4.2\n" + "".join(f"##contig=<ID={c}>\n" for c in dict.fromkeys(b[0] for b in bim))
            + '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ts1\n")
    (tmp_path / "in.vcf").write_text(head + "".join(line + "\n" for line in lines))
    out = tmp_path / "o.vcf.gz"
    summary = json.loads(run(["score-vcf", model, tmp_path / "in.vcf", "-o", out, "--json"]).stdout)
    assert summary["output"] == "logit" and summary["scored"] == len(lines) == len(want)
    assert summary["ref_mismatch"] == 0 and summary["mean_f"] is None
    header, recs = read_out(out)
    assert "##INFO=<ID=VARFX_PCAUSAL,Number=A,Type=Float" in header and "VARFX_F" not in header
    got = np.array([r.info["VARFX_PCAUSAL"][0] for r in recs])
    np.testing.assert_allclose(got, [want[(int(r.chrom), r.pos)] for r in recs], rtol=1e-5)
    assert np.all((got > 0) & (got < 1)) and np.std(got) > 0


def _many_records(glm, path, n):
    """``n`` sorted SNV records over the features' span, REF the FASTA base."""
    import pysam

    tmp, _, rows = glm
    bp = np.array([r[2] for r in rows])
    rng = np.random.default_rng(1)
    pos = np.sort(rng.integers(bp.min(), bp.max(), n))
    with pysam.FastaFile(str(tmp / "ref.fa")) as fa:
        seq = fa.fetch("chr22")
    ref = np.frombuffer(seq.encode(), dtype="S1")[pos - 1].astype(str)
    alt = np.where(ref == "A", "G", "A")
    af = rng.uniform(0.01, 0.5, n)
    with open(path, "w") as fh:
        fh.write(open(write_vcf(path.with_suffix(".head"), [])).read())
        for chunk in range(0, n, 100_000):
            sl = slice(chunk, chunk + 100_000)
            fh.write("".join(f"22\t{p}\t.\t{r}\t{a}\t.\t.\tAF={f:.4f}\tGT\t0|1\n"
                             for p, r, a, f in zip(pos[sl], ref[sl], alt[sl], af[sl])))
    return path


PEAK_RSS = """
import json, resource, sys
from varfx.stages.score_vcf import run_score_vcf
s = run_score_vcf(sys.argv[1], sys.argv[2], sys.argv[3], batch=20000)
print(json.dumps({"records": s["records"], "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


@pytest.mark.slow
def test_memory_does_not_grow_with_the_vcf(glm, tmp_path):
    """Peak RSS scoring 10^6 records is within 10% of that at 10^5 (records are streamed)."""
    import os
    import subprocess
    import sys

    tmp, model, _ = glm
    peak = {}
    for n in (100_000, 1_000_000):
        vcf = _many_records(glm, tmp_path / f"n{n}.vcf", n)
        r = subprocess.run([sys.executable, "-c", PEAK_RSS, str(model), str(vcf), str(tmp_path / f"o{n}.vcf.gz")],
                           capture_output=True, text=True, env={**os.environ}, timeout=300)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout.strip().splitlines()[-1])
        assert out["records"] == n
        peak[n] = out["rss_kb"]
        os.unlink(vcf)
    assert peak[1_000_000] <= 1.1 * peak[100_000], peak


def test_csi_index_for_a_contig_over_512_mb(glm, tmp_path):
    """tabix (.tbi) cannot index positions past 2^29: a contig declared longer gets CSI."""
    import pysam

    tmp, model, rows = glm
    s, c, b, ref, alt, af = [r for r in rows if len(r[3]) == 1 and len(r[4]) == 1][0]
    vcf = write_vcf(tmp_path / "in.vcf", [f"{c}\t{b}\t{s}\t{ref}\t{alt}\t.\t.\t.\tGT\t0|1"], length=600_000_000)
    out = tmp_path / "o.vcf.gz"
    summary = json.loads(run(["score-vcf", model, vcf, "-o", out, "--json"]).stdout)
    assert summary["index"].endswith(".csi") and (tmp_path / "o.vcf.gz.csi").is_file()
    assert not (tmp_path / "o.vcf.gz.tbi").exists()
    with pysam.VariantFile(str(out)) as vf:
        assert [r.id for r in vf.fetch(str(c), b - 1, b)] == [s]


def _vcf_text(contigs, lines):
    return ("##fileformat=VCFv4.2\n" + "".join(f"##contig=<ID={c},length={n}>\n" for c, n in contigs)
            + '##INFO=<ID=AF,Number=A,Type=Float,Description="ALT frequency">\n'
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ts1\n" + "".join(line + "\n" for line in lines))


def test_positions_outside_the_inputs_coverage_get_a_dot_and_are_counted(glm, tmp_path):
    """The fixture's bigWig has data on chr22 [lo, hi) only and the FASTA ends at hi; a
    replacement BED (--annotations, same columns) adds chr21, known to no other input.
    Records where the bigWig has no data in the window, past the FASTA's end, or on
    chr21 get '.' and are counted per input; the covered ones keep `varfx score`'s F; a
    contig no input knows stays an error."""
    import pysam

    tmp, model, rows = glm
    score = {line.split("\t")[0]: float(line.split("\t")[3])
             for line in (tmp / "score.tsv").read_text().splitlines()[1:]}
    bp = np.array([r[2] for r in rows])
    lo, hi = int(bp.min()) - 500, int(bp.max()) + 500
    with pysam.FastaFile(str(tmp / "ref.fa")) as fa:
        assert fa.get_reference_length("chr22") == hi
        base = {p: fa.fetch("chr22", p - 1, p) for p in (lo - 100, lo + 10)}
    snv = [r for r in rows if len(r[3]) == 1 and len(r[4]) == 1][:5]
    alt = {b: "A" if b != "A" else "C" for b in "ACGT"}
    lines = [f"21\t5000\tchr21\tA\tG\t.\t.\tAF=0.2\tGT\t0|1",
             f"22\t{lo - 100}\tno_data\t{base[lo - 100]}\t{alt[base[lo - 100]]}\t.\t.\tAF=0.2\tGT\t0|1",
             f"22\t{lo + 10}\tedge\t{base[lo + 10]}\t{alt[base[lo + 10]]}\t.\t.\tAF=0.2\tGT\t0|1"]
    lines += [f"{c}\t{b}\t{s}\t{ref}\t{a}\t.\t.\tAF={af:.17g}\tGT\t0|1" for s, c, b, ref, a, af in snv]
    lines += [f"22\t{hi + 50}\tpast_end\tA\tC,G\t.\t.\tAF=0.1,0.2\tGT\t0|1"]
    vcf = tmp_path / "in.vcf"
    vcf.write_text(_vcf_text([("21", 48129895), ("22", 51304566)], lines))
    # the recorded BED again, with one interval on chr21 more
    peaks = (tmp / "peaks.bed").read_text() + "chr21\t4000\t6000\n"
    (tmp_path / "peaks.bed").write_text(peaks)
    (tmp_path / "manifest.tsv").write_text("name\tpath\npeaks\tpeaks.bed\n")
    out = tmp_path / "o.vcf.gz"
    summary = json.loads(run(["score-vcf", model, vcf, "-o", out, "--annotations", tmp_path / "manifest.tsv",
                              "--json"]).stdout)
    # alleles: chr21 (1), no data (1), past the end (2); the window of `edge` (32 bp
    # from lo + 10 - 16) holds bigWig data, so it is scored
    assert summary["outside"] == 4 and summary["scored"] == 6 and summary["records"] == len(lines)
    # the reference and the dataset's FASTA feature ("sequence", the same file) end at
    # hi and lack chr21; the bigWig lacks chr21, has no data at lo - 100, ends at hi
    assert summary["outside_by"] == {"reference": 3, "sequence": 3, "signal": 4}, summary["outside_by"]
    _, recs = read_out(out)
    by_id = {r.id: r for r in recs}
    for name in ("chr21", "no_data", "past_end"):
        assert "VARFX_F" not in by_id[name].info and "VARFX_ENRICH" not in by_id[name].info
    assert np.isfinite(by_id["edge"].info["VARFX_F"][0])
    for s, *_ in snv:
        assert by_id[s].info["VARFX_F"][0] == pytest.approx(score[s], rel=1e-5)
    # chr21 without the replacement BED: no input of the model knows it
    r = run(["score-vcf", model, vcf, "-o", tmp_path / "bad.vcf.gz"], code=1)
    assert "contig 21 unknown to every input" in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "bad.vcf.gz").exists()


def test_ld_score_of_a_new_variant_is_the_recorded_mean(tmp_path):
    """An `architecture` ld_score column cannot be known for a new variant: it gets the
    dataset's raw mean, which the recorded normalisation maps to 0; freq and maf come
    from the variant's own frequency, normalised with the recorded mean and sd (checked
    against numpy on the dataset's raw values)."""
    import h5py

    from varfx.features.manifest import ManifestEntry
    from varfx.features.store import NewVariantFeatures, recorded_features, write_features

    rng = np.random.default_rng(5)
    m = 200
    freq = rng.uniform(0.01, 0.99, m)
    ld = rng.gamma(3.0, 20.0, m)
    chrom = np.full(m, 22)
    bp = np.sort(rng.choice(np.arange(1000, 10**6), m, replace=False))
    for columns in ("freq,maf,ld_score", "auto"):
        path = tmp_path / f"{columns.replace(',', '_')}.h5"
        with h5py.File(path, "w") as f5:
            write_features(f5.create_group("features"), chrom, bp,
                           [ManifestEntry(name="arch", kind="architecture", options={"columns": columns})],
                           window=8, variants={"freq": freq, "ld_score": ld})
        with h5py.File(path, "r") as h5:
            plan = recorded_features(h5)
            assert plan[5] == ["arch.freq", "arch.maf", "arch.ld_score"]
            nf = NewVariantFeatures(plan)
            new_f = np.array([0.05, 0.5, 0.93])
            x = nf.compute(np.full(3, 22), np.array([5, 50, 500]), new_f)["features"]
        f32 = lambda v: np.asarray(v, dtype=np.float32).astype(np.float64)  # noqa: E731 (ingest's precision)
        for j, (raw, new) in enumerate(((freq, new_f), (np.minimum(freq, 1 - freq), np.minimum(new_f, 1 - new_f)))):
            mean, sd = f32(raw).mean(), f32(raw).std()
            np.testing.assert_allclose(x[:, j], (f32(new) - mean) / sd, atol=1e-6)
        # 0 up to the float32 rounding of the raw mean (~1e-7 of it, over an sd ~ 35)
        assert np.all(np.abs(x[:, 2]) < 1e-6 * ld.mean() / ld.std() + 1e-7), x[:, 2]
        # the old fill (the batch's mean of all-missing values: 0) was mean/sd away
        assert ld.mean() / ld.std() > 1


def test_earlier_varfx_fields_are_replaced_with_a_note(glm, tmp_path):
    """A VCF scored before (VARFX_* declared, values present, a ##varfx line): the output
    declares each field once, holds only this model's values, and stderr says so; a
    FASTA other than the recorded one is a note too (as `varfx score` prints)."""
    import pysam

    tmp, model, rows = glm
    snv = [r for r in rows if len(r[3]) == 1 and len(r[4]) == 1][:20]
    lines = [f"{c}\t{b}\t{s}\t{ref}\t{alt}\t.\t.\tAF={af:.17g}\tGT\t0|1" for s, c, b, ref, alt, af in snv]
    first = tmp_path / "first.vcf.gz"
    run(["score-vcf", model, write_vcf(tmp_path / "in.vcf", lines), "-o", first, "--json"])
    # an earlier run's fields with other values, and a field of a MIL model
    with pysam.VariantFile(str(first)) as vf:
        hdr = vf.header.copy()
        hdr.add_line('##INFO=<ID=VARFX_PCAUSAL,Number=A,Type=Float,Description="old">')
        with pysam.VariantFile(str(tmp_path / "old.vcf"), "w", header=hdr) as vo:
            for r in vf:
                r.translate(hdr)
                r.info["VARFX_F"] = (123.0,)
                r.info["VARFX_PCAUSAL"] = (0.5,)
                vo.write(r)
    assert "VARFX_F=123" in (tmp_path / "old.vcf").read_text()
    # the same reference, written again with another line width: another size, same bases
    from varfx.testing.features import write_fasta

    with pysam.FastaFile(str(tmp / "ref.fa")) as fa:
        write_fasta(tmp_path / "ref2.fa", {"chr22": fa.fetch("chr22")}, width=70)
    out = tmp_path / "again.vcf.gz"
    r = run(["score-vcf", model, tmp_path / "old.vcf", "-o", out, "--fasta", tmp_path / "ref2.fa", "--json"])
    summary = json.loads(r.stdout)
    assert sorted(summary["replaced_fields"]) == ["VARFX_ENRICH", "VARFX_F", "VARFX_PCAUSAL"]
    assert "Note:" in r.stderr and "VARFX_F" in r.stderr and "replaced" in r.stderr
    assert "differs from the one recorded" in r.stderr
    assert any("VARFX_F" in n for n in summary["notes"])
    header, recs = read_out(out)
    assert header.count("##INFO=<ID=VARFX_F,") == 1 and header.count("##INFO=<ID=VARFX_ENRICH,") == 1
    assert "VARFX_PCAUSAL" not in header and header.count("##varfx=") == 1
    _, want = read_out(first)
    for got, w in zip(recs, want):
        assert "VARFX_PCAUSAL" not in got.info
        # this model's F (old.vcf's AF went through pysam's float32 text: rel 1e-5)
        assert got.info["VARFX_F"] == pytest.approx(w.info["VARFX_F"], rel=1e-5)
    # a plain VCF: no note
    r = run(["score-vcf", model, tmp_path / "in.vcf", "-o", tmp_path / "plain.vcf.gz", "--json"])
    assert "Note" not in r.stderr and json.loads(r.stdout)["notes"] == []


def test_threads_and_progress_leave_the_output_unchanged(glm, tmp_path):
    """--threads 1 and 2 (torch and htslib threads) write the same VCF as the default;
    torch's thread count is restored; a progress bar (on a terminal) changes nothing in
    the output, and --json keeps stderr free of it."""
    import pysam
    import torch

    from varfx.stages.score_vcf import run_score_vcf

    tmp, model, _ = glm
    vcf = _many_records(glm, tmp_path / "many.vcf", 3000)
    pysam.tabix_compress(str(vcf), str(vcf) + ".gz")
    texts = []
    before = torch.get_num_threads()
    for i, extra in enumerate(([], ["--threads", 1], ["--threads", 2])):
        out = tmp_path / f"o{i}.vcf.gz"
        r = run(["score-vcf", model, str(vcf) + ".gz", "-o", out, "--batch", 700, "--json", *extra])
        assert json.loads(r.stdout)["scored"] == 3000 and r.stderr == ""
        assert torch.get_num_threads() == before
        texts.append(gzip.decompress(out.read_bytes()).decode())
    assert texts[0] == texts[1] == texts[2]
    run_score_vcf(model, vcf, tmp_path / "bar.vcf.gz", batch=1000, progress=True)
    assert gzip.decompress((tmp_path / "bar.vcf.gz").read_bytes()).decode() == texts[0]


def test_bad_af_threads_and_batch_options(glm, tmp_path):
    tmp, model, rows = glm
    s, c, b, ref, alt, af = [r for r in rows if len(r[3]) == 1 and len(r[4]) == 1][0]
    _bad(glm, tmp_path, write_vcf(tmp_path / "af.vcf", [f"{c}\t{b}\t{s}\t{ref}\t{alt}\t.\t.\tAF=1.5\tGT\t0|1"]),
         "AF 1.5")
    _bad(glm, tmp_path, write_vcf(tmp_path / "nan.vcf", [f"{c}\t{b}\t{s}\t{ref}\t{alt}\t.\t.\tAF=nan\tGT\t0|1"]),
         "AF nan")
    vcf = write_vcf(tmp_path / "ok.vcf", [f"{c}\t{b}\t{s}\t{ref}\t{alt}\t.\t.\t.\tGT\t0|1"])
    r = run(["score-vcf", model, vcf, "-o", tmp_path / "x.vcf.gz", "--threads", -1], code=2)
    assert "--threads" in r.output
    r = run(["score-vcf", model, vcf, "-o", tmp_path / "x.vcf.gz", "--batch", 0], code=1)
    assert "--batch 0" in r.output and not (tmp_path / "x.vcf.gz").exists()


@pytest.mark.slow
def test_score_benchmark_runs_and_counts_the_records():
    """benchmarks/score.py --json (its numbers live in docs/benchmarks.md) keeps running:
    one JSON object, every record scored, the rates consistent with the times."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "score.py"
    r = subprocess.run([sys.executable, str(script), "--json", "--records", "300,900", "--models", "glm"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [(x["model"], x["records"]) for x in out["runs"]] == [("glm", 300), ("glm", 900)]
    for x in out["runs"]:
        assert x["records_per_second"] == pytest.approx(x["records"] / x["seconds"], rel=1e-2, abs=1)
        assert 0 < x["seconds"] <= x["wall_seconds"] and x["peak_rss_mb"] > 50
    assert out["rss_ratio"]["glm"] == round(out["runs"][1]["peak_rss_mb"] / out["runs"][0]["peak_rss_mb"], 3)


def test_a_source_with_covered_decides_its_coverage(glm, tmp_path, monkeypatch):
    """A feature source that defines covered() (the plugin hook) says which variants it
    covers: here the BED source claims only even positions."""
    from varfx.features.sources import BedSource

    tmp, model, rows = glm
    monkeypatch.setattr(BedSource, "covered", lambda self, path, chrom, pos, *, window: pos % 2 == 0, raising=False)
    snv = [r for r in rows if len(r[3]) == 1 and len(r[4]) == 1][:40]
    lines = [f"{c}\t{b}\t{s}\t{ref}\t{alt}\t.\t.\t.\tGT\t0|1" for s, c, b, ref, alt, af in snv]
    out = tmp_path / "o.vcf.gz"
    summary = json.loads(run(["score-vcf", model, write_vcf(tmp_path / "in.vcf", lines), "-o", out,
                              "--json"]).stdout)
    odd = sum(b % 2 for _, _, b, *_ in snv)
    assert 0 < odd < len(snv)
    assert summary["outside_by"] == {"peaks": odd} and summary["scored"] == len(snv) - odd
    assert all(("VARFX_F" in r.info) == (r.pos % 2 == 0) for r in read_out(out)[1])


# ----------------------------------------------------------------------------- table features


def test_table_source_reads_its_file_at_most_twice_over_batches(tmp_path, monkeypatch):
    # score-vcf asks a table for each batch of records: the first request reads the rows
    # of that batch, a later one with new variants the whole table, and then no more
    from varfx.errors import UserError
    from varfx.features.sources.table import TableSource

    rng = np.random.default_rng(0)
    bp = np.sort(rng.choice(np.arange(1, 10**6), 400, replace=False))
    vals = rng.normal(size=400)
    p = tmp_path / "t.tsv"
    p.write_text("CHR\tBP\tscore\n" + "".join(f"22\t{b}\t{v!r}\n" for b, v in zip(bp.tolist(), vals.tolist()))
                 + f"22\t{10**6 + 5}\t1\n22\t{10**6 + 5}\t2\n")  # a duplicated row, outside the batches
    loads = []
    real = TableSource._load
    monkeypatch.setattr(TableSource, "_load", lambda self, *a, **kw: loads.append(1) or real(self, *a, **kw))
    src = TableSource()
    query = np.concatenate([bp, bp[:50] + 1])  # positions in the table, then absent ones (0)
    got = np.concatenate([src.read(p, np.full(len(b), 22), b) for b in np.array_split(query, 9)])
    np.testing.assert_array_equal(got[:, 0], np.concatenate([vals, np.zeros(50)]))
    assert len(loads) == 2
    # the duplicated row is an error once a variant asks for it, naming its line
    with pytest.raises(UserError, match=r"line 403: a second row for the same variant \(first on line 402\)"):
        src.read(p, [22], [10**6 + 5])
    assert len(loads) == 2
    assert src.covered(p, [22, 22], [1, 2]).tolist() == [True, True] and src.coverage_note(p) is None
    q = tmp_path / "ids.tsv"
    q.write_text("SNP\tscore\nrs1\t2\n")
    assert src.covered(q, [22], [5]).tolist() == [False] and "keyed by SNP id" in src.coverage_note(q)


def test_a_table_keyed_by_snp_id_leaves_new_variants_outside(glm, tmp_path):
    """A model with a feature from a table keyed by SNP id cannot compute it for a variant
    of a VCF (no dataset id to look up): `.`, counted under outside_by, with a note."""
    tmp, _, rows = glm
    prefix, ss = write_subset(tmp_path / "in", 0, 300)
    snps = [r[0] for r in rows]
    (tmp_path / "ids.tsv").write_text("SNP\tscore\n" + "".join(f"{s}\t{i % 7}\n" for i, s in enumerate(snps)))
    (tmp_path / "manifest.tsv").write_text(f"name\tpath\nids\t{tmp_path / 'ids.tsv'}\n")
    ds = tmp_path / "ds"
    run(["ingest", "--sumstats", ss, "--ld", prefix, "--annotations", tmp_path / "manifest.tsv",
         "--fasta", tmp / "ref.fa", "-o", ds, "--json"])
    run(["precompute-ld", ds, "--window-kb", 500, "--flank-kb", 100, "--json"])
    model = tmp_path / "m"
    run(["fit", ds, "--prior", "glm", "--alpha", "learn", "--sigma2", 1, "--holdout-chroms", "none",
         "--epochs", 1, "-o", model])
    snv = [r for r in rows if len(r[3]) == 1 and len(r[4]) == 1][:20]
    lines = [f"{c}\t{b}\t{s}\t{ref}\t{alt}\t.\t.\tAF={af:.4f}\tGT\t0|1" for s, c, b, ref, alt, af in snv]
    out = tmp_path / "o.vcf.gz"
    r = run(["score-vcf", model, write_vcf(tmp_path / "in.vcf", lines), "-o", out, "--json"])
    summary = json.loads(r.stdout)
    assert summary["scored"] == 0 and summary["outside"] == len(lines)
    assert summary["outside_by"] == {"ids": len(lines)}
    assert any("keyed by SNP id" in n for n in summary["notes"]) and "keyed by SNP id" in r.stderr
    assert all("VARFX_F" not in rec.info for rec in read_out(out)[1])


_FAULTS = """
import resource, sys
import numpy as np
if sys.argv[1] == "on":
    from varfx.stages.score_vcf import _reuse_freed_memory
    assert _reuse_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(12):
    if i == 2:
        f0 = faults()
    a = [np.ones((1 << 18) << (k % 3)) for k in range(6)]  # 2-8 MB each, as a forward's layers
    del a
print((faults() - f0) / 10)
"""


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc")
def test_freed_memory_is_reused_without_page_faults():
    # score-vcf of a DNA network sets glibc's malloc to keep freed blocks of a few MB (a
    # forward's layers) for the next allocations: by default each one was mapped or
    # trimmed and page-faulted in again (a third of seqcnn's CPU time in system time).
    # Page faults per round of 6 allocations of 2-8 MB (~3,600 pages), in fresh processes
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    per_round = {}
    for mode in ("off", "on"):
        r = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        per_round[mode] = float(r.stdout.split()[-1])
    assert per_round["on"] <= 30, per_round
    assert per_round["off"] > 10 * max(per_round["on"], 1), per_round  # the default faults: what this fixes
