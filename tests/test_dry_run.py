"""``--dry-run`` of ingest, bags and score-vcf: nothing is written (the directory tree
is unchanged), the counts are those the run then produces, the output sizes are close
to the files the run writes, and a bad input gives the run's own one-line error
(docs/scale.md, "Dry runs of ingest, bags and score-vcf")."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _cli import invoke, ok
from _data import PANEL, SUMSTATS, write_subset
from _train import tree


def same_failure(args_run, args_dry):
    """The run and its dry run fail alike: exit 1, the same single line."""
    real, dry = invoke(args_run), invoke(args_dry)
    assert real.exit_code == 1 and dry.exit_code == 1, (real.output, dry.output)
    assert "Traceback" not in dry.output and len(dry.output.strip().splitlines()) == 1
    assert dry.output == real.output
    return dry.output


# ------------------------------------------------------------------------------ ingest


@pytest.fixture(scope="module")
def chr22(tmp_path_factory):
    """The real run's summary and dataset of the bundled chr22 data (14,954 matched
    variants: more than the dry run's sample of 4,096), and the dry run's plan."""
    tmp = tmp_path_factory.mktemp("dry")
    args = ["ingest", "--sumstats", SUMSTATS, "--ld", PANEL, "-o", tmp / "ds"]
    before = tree(tmp)
    dry = json.loads(ok(args + ["--dry-run", "--json"]).stdout)
    assert tree(tmp) == before and not (tmp / "ds").exists()  # the output directory was not even made
    real = json.loads(ok(args + ["--json"]).stdout)
    return {"tmp": tmp, "args": args, "dry": dry, "real": real, "ds": tmp / "ds"}


def test_ingest_dry_run_counts_are_the_runs(chr22):
    dry, real = chr22["dry"], chr22["real"]
    assert dry["dry_run"] and dry["stage"] == "ingest" and dry["counts_exact"]
    assert dry["sample"]["variants"] == 4096 < real["matched"]
    # every count of the run, the same (the reading and matching are the run's own)
    assert dry["counts"] == real
    assert [r["role"] for r in dry["reads"]] == ["sumstats", "ld_bed", "ld_bim", "ld_fam"]
    assert dry["reads"][0]["bytes"] == SUMSTATS.stat().st_size


def test_ingest_dry_run_disk_estimate(chr22):
    """The dataset.h5 size scaled from the 4,096-variant sample is within 10% of the real
    file (the sample writes the same arrays and compression; the variants' gzip ratio
    varies a little along the chromosome)."""
    dry, ds = chr22["dry"], chr22["ds"]
    real_bytes = (ds / "dataset.h5").stat().st_size
    assert dry["writes"][0]["path"] == str(ds / "dataset.h5") and not dry["writes"][0]["replaces"]
    assert abs(dry["disk_bytes"] / real_bytes - 1) < 0.10, (dry["disk_bytes"], real_bytes)
    assert dry["seconds"] >= dry["seconds_measured"] > 0 and dry["memory_bytes"] > 0


def test_ingest_dry_run_over_an_existing_dataset(chr22):
    """Over an existing dataset: the run would replace the directory (its other files
    listed in ``removes``), the peak counts both; still nothing is written."""
    ds = chr22["ds"]
    (ds / "notes.txt").write_text("x" * 1000)
    try:
        before = tree(chr22["tmp"])
        r = ok(chr22["args"] + ["--dry-run"])
        assert tree(chr22["tmp"]) == before
        assert r.stdout == "" and "nothing written" in r.stderr and "(replaced)" in r.stderr
        plan = json.loads(ok(chr22["args"] + ["--dry-run", "--json"]).stdout)
        assert plan["writes"][0]["replaces"] and plan["removes"] == [str(ds / "notes.txt")]
        old = (ds / "dataset.h5").stat().st_size + 1000
        assert plan["disk_peak_bytes"] == pytest.approx(plan["disk_bytes"] + old)
        assert tree(chr22["tmp"]) == before
    finally:
        (ds / "notes.txt").unlink()


def test_ingest_dry_run_bad_inputs_fail_as_the_run(tmp_path):
    prefix, ss = write_subset(tmp_path / "in", 0, 50)
    base = ["ingest", "--sumstats", ss, "-o", tmp_path / "out"]
    for extra in (["--ld", tmp_path / "nope"], ["--ld", prefix, "--ld-region", "banana"],
                  ["--ld", prefix, "--col-z", "NOPE"]):
        same_failure(base + extra, base + extra + ["--dry-run"])
    # sumstats 7 bp off every panel position (another build?): found only by matching them
    lines = ss.read_text().splitlines()
    col = lines[0].split("\t").index("POS")
    moved = [lines[0]] + ["\t".join(f if i != col else str(int(f) + 7) for i, f in enumerate(line.split("\t")))
                          for line in lines[1:]]
    bad = tmp_path / "moved.txt"
    bad.write_text("\n".join(moved) + "\n")
    args = ["ingest", "--sumstats", bad, "--ld", prefix, "-o", tmp_path / "out"]
    assert "different genome build" in same_failure(args, args + ["--dry-run"])
    assert not (tmp_path / "out").exists()


def test_ingest_dry_run_ukbb_regions_and_features(tmp_path, write_region, monkeypatch):
    """UKBB/PolyFun LD regions (ld_regions_used counted by the sample's write, which is
    every variant here) and annotations with per-base tracks: the same counts as the
    run, nothing written, the size close to the file."""
    from varfx.testing.data import EXAMPLE_DATA

    _, ss = write_subset(tmp_path / "in", 1000, 600)
    write_region(tmp_path / "ukbb", range(1000, 1600))
    args = ["ingest", "--sumstats", ss, "--ld", tmp_path / "ukbb", "--annotations",
            EXAMPLE_DATA / "demo_annotations.tsv", "--feature-window", 64, "-o", tmp_path / "ds"]
    before = tree(tmp_path)
    import varfx.store.dry_run as dr

    # the process's own peak left out: what remains is the tracks' memory, added
    monkeypatch.setattr(dr, "peak_rss_bytes", lambda: 0)
    dry = json.loads(ok(args + ["--dry-run", "--json"]).stdout)
    assert tree(tmp_path) == before
    real = json.loads(ok(args + ["--json"]).stdout)
    assert dry["counts"]["ld_regions_used"] == real["ld_regions_used"] >= 1 and dry["n_people"] is None
    # the features' summary is the run's but for the seconds it took
    assert {k: v for k, v in dry["counts"].pop("features").items() if k != "seconds"} == \
        {k: v for k, v in real.pop("features").items() if k != "seconds"}
    assert dry["counts"] == real
    size = (tmp_path / "ds" / "dataset.h5").stat().st_size
    assert abs(dry["disk_bytes"] / size - 1) < 0.10, (dry["disk_bytes"], size)
    # the per-base tracks write_features keeps in memory between its passes: M x 64 x T float32
    import h5py

    with h5py.File(tmp_path / "ds" / "dataset.h5", "r") as h5:
        m, w, t = h5["features"]["window"].shape
    assert w == 64 and t >= 1 and dry["memory_bytes"] == m * w * t * 4


def test_dry_runs_to_a_read_only_filesystem(readonly_dir, chr22, model, tmp_path):
    """A destination the run could not write is the dry run's error too (exit 1, one
    line naming it), after the inputs were found good."""
    r = invoke(["ingest", "--sumstats", SUMSTATS, "--ld", PANEL, "-o", readonly_dir / "ds", "--dry-run"])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, r.output
    assert "read-only file system" in r.output and str(readonly_dir) in r.output
    model_dir, rows = model
    vcf = write_vcf(tmp_path / "in.vcf", rows[:20])
    r = invoke(["score-vcf", model_dir, vcf, "-o", readonly_dir / "sub" / "o.vcf.gz", "--dry-run"])
    assert r.exit_code == 1 and "read-only file system" in r.output and "Traceback" not in r.output, r.output
    assert list(readonly_dir.iterdir()) == []


# ------------------------------------------------------------------------------ bags


def test_bags_dry_run(chr22):
    ds = chr22["ds"]
    before = tree(ds)
    r = ok(["bags", ds, "--dry-run"])
    plan = json.loads(r.stdout)
    assert tree(ds) == before and not (ds / "bags.h5").exists()
    assert "nothing written" in r.stderr and plan["stage"] == "bags" and plan["counts_exact"]
    summary = json.loads(ok(["bags", ds]).stdout)
    try:
        assert plan["counts"] == {k: v for k, v in summary.items() if k != "notes"}
        assert plan["counts"]["bags"] > 0 and plan["counts"]["negatives"] > 0
        # bags.h5 written into memory: the same bytes as on disk, to HDF5's allocation
        real = (ds / "bags.h5").stat().st_size
        assert abs(plan["disk_bytes"] / real - 1) < 0.02, (plan["disk_bytes"], real)
        again = json.loads(ok(["bags", ds, "--dry-run"]).stdout)
        assert again["writes"][0]["replaces"]
        assert again["disk_peak_bytes"] == pytest.approx(again["disk_bytes"] + real)
        for extra in (["--p-threshold", "1e-300"], ["--drop-unknown"], ["--blocks", ds / "none.tsv"]):
            same_failure(["bags", ds, *extra], ["bags", ds, *extra, "--dry-run"])
        assert (ds / "bags.h5").stat().st_size == real  # the failed runs left it alone
    finally:
        (ds / "bags.h5").unlink()


# ------------------------------------------------------------------------------ score-vcf


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A constant-prior model of 300 chr22 variants, and those variants."""
    tmp = tmp_path_factory.mktemp("dryvcf")
    prefix, ss = write_subset(tmp / "in", 0, 300)
    ds = tmp / "ds"
    ok(["ingest", "--sumstats", ss, "--ld", prefix, "-o", ds, "--json"])
    ok(["precompute-ld", ds, "--window-kb", 500, "--flank-kb", 100, "--json"])
    ok(["fit", ds, "--prior", "constant", "--alpha", 0, "--sigma2", 1, "--holdout-chroms", "none", "-o", tmp / "m"])
    bim = [line.split() for line in open(f"{prefix}.bim")]
    return tmp / "m", [(b[0], int(b[3]), b[1], b[5], b[4]) for b in bim if len(b[4]) == len(b[5]) == 1]


def write_vcf(path, rows):
    head = ("##fileformat=VCFv4.2\n##contig=<ID=22,length=51304566>\n"
            '##INFO=<ID=AF,Number=A,Type=Float,Description="ALT frequency">\n'
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    path.write_text(head + "".join(f"{c}\t{b}\t{s}\t{ref}\t{alt}\t.\t.\tAF=0.{i % 9 + 1}\n"
                                   for i, (c, b, s, ref, alt) in enumerate(rows)))
    return path


def test_score_vcf_dry_run_small_vcf_is_exact(model, tmp_path):
    model_dir, rows = model
    vcf = write_vcf(tmp_path / "in.vcf", rows)
    out = tmp_path / "new" / "out.vcf.gz"
    before = tree(tmp_path)
    r = ok(["score-vcf", model_dir, vcf, "-o", out, "--dry-run"])
    assert r.stdout == "" and "nothing written" in r.stderr
    plan = json.loads(ok(["score-vcf", model_dir, vcf, "-o", out, "--dry-run", "--json"]).stdout)
    assert tree(tmp_path) == before and not (tmp_path / "new").exists()
    real = json.loads(ok(["score-vcf", model_dir, vcf, "-o", out, "--json"]).stdout)
    assert plan["counts_exact"] and plan["sample"]["records"] == len(rows)
    for key in ("records", "alleles", "scored", "indel", "symbolic", "outside", "af_missing", "outside_by"):
        assert plan["counts"][key] == real[key], key
    # the same records, the same bgzip: the output is the run's to the header line
    # naming the model and the block boundaries
    assert abs(plan["writes"][0]["bytes"] / out.stat().st_size - 1) < 0.05
    assert plan["writes"][1]["path"] == str(out) + ".tbi" and plan["writes"][1]["unpriced"]
    # unsorted records: the run's error, found in the sample
    bad = write_vcf(tmp_path / "unsorted.vcf", rows[::-1])
    same_failure(["score-vcf", model_dir, bad, "-o", tmp_path / "o2.vcf.gz"],
                 ["score-vcf", model_dir, bad, "-o", tmp_path / "o2.vcf.gz", "--dry-run"])
    same_failure(["score-vcf", tmp_path / "nomodel", vcf, "-o", tmp_path / "o2.vcf.gz"],
                 ["score-vcf", tmp_path / "nomodel", vcf, "-o", tmp_path / "o2.vcf.gz", "--dry-run"])


@pytest.mark.parametrize("gz", [False, True])
def test_score_vcf_dry_run_estimates_a_long_vcf(model, tmp_path, gz):
    """12,000 records (more than the 5,000 scored): the record count is estimated from
    the bytes the sample took of the file (records of one length: within 3%), the
    counts scaled alike, the output size within 15% of the run's file."""
    import pysam

    model_dir, rows = model
    rng = np.random.default_rng(1)
    pos = np.sort(rng.choice(np.arange(16_000_000, 50_000_000), 12_000, replace=False))
    many = [("22", int(p), f"rs{i}", "A", "C") for i, p in enumerate(pos)]
    vcf = write_vcf(tmp_path / "many.vcf", many)
    if gz:
        pysam.tabix_compress(str(vcf), str(vcf) + ".gz", force=True)
        vcf = tmp_path / "many.vcf.gz"
    out = tmp_path / "o" / "out.vcf.gz"
    before = tree(tmp_path)
    plan = json.loads(ok(["score-vcf", model_dir, vcf, "-o", out, "--dry-run", "--json"]).stdout)
    assert tree(tmp_path) == before
    assert not plan["counts_exact"] and plan["sample"]["records"] == 5000
    assert abs(plan["counts"]["records"] / 12_000 - 1) < 0.03, plan["counts"]
    assert plan["counts"]["scored"] == plan["counts"]["records"]
    real = json.loads(ok(["score-vcf", model_dir, vcf, "-o", out, "--json"]).stdout)
    assert real["records"] == 12_000
    assert abs(plan["writes"][0]["bytes"] / out.stat().st_size - 1) < 0.15
    assert plan["seconds"] > plan["seconds_measured"] > 0
