"""Bad inputs to ``varfx bags``: each case asserts the exit code (1 for a UserError, 2 for
a click usage error), exactly one ``Error:`` line naming what was wrong, no traceback,
and that nothing is left behind (no bags.h5, no temporary file)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from varfx.cli import cli

from _data import write_subset
from _train import tree


def invoke(args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A slice of the chr22 demo data (43-46 Mb: two regions of genome-wide significant hits)."""
    tmp = tmp_path_factory.mktemp("bagsbad")
    prefix, ss = write_subset(tmp / "in", 11247, 1848)
    ds = tmp / "ds"
    r = invoke(["ingest", "--sumstats", ss, "--ld", prefix, "-o", ds, "--json"])
    assert r.exit_code == 0, r.output
    return {"tmp": tmp, "ds": ds}


def copy_ds(base, tmp) -> Path:
    d = tmp / "case_ds"
    d.mkdir()
    shutil.copy(base["ds"] / "dataset.h5", d / "dataset.h5")
    return d


def first_variants(base, k=12):
    import h5py

    with h5py.File(base["ds"] / "dataset.h5", "r") as h5:
        v = h5["variants"]
        return [(int(v["chrom"][i]), int(v["bp"][i]), v["snp"].asstr()[i], v["a1"].asstr()[i], v["a2"].asstr()[i])
                for i in range(k)]


HEADER = "chr\tbp\trsid\tea\tnea\tp\tblock_id\n"


def blocks_case(make, needle, extra=()):
    """``make(base) -> text`` of a --blocks file."""
    def case(base, tmp, mounts):
        f = tmp / "blocks.tsv"
        f.write_text(make(base))
        return ["bags", copy_ds(base, tmp), "--blocks", f, *extra], 1, needle
    return case


def good_rows(base, k=12, p=1e-9):
    return "".join(f"{c}\t{bp}\t{s}\t{a1}\t{a2}\t{p}\tB1\n" for c, bp, s, a1, a2 in first_variants(base, k))


def with_row(row, at=5):
    def make(base):
        lines = good_rows(base).splitlines(keepends=True)
        lines.insert(at, row)
        return HEADER + "".join(lines)
    return make


def opt(*args, code=2, needle=None):
    def case(base, tmp, mounts):
        return ["bags", base["ds"], *args], code, needle or args[0]
    return case


def readonly(base, tmp, mounts):
    d = tmp / "ro"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(d)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()})")
    mounts.append(d)
    shutil.copy(base["ds"] / "dataset.h5", d / "dataset.h5")
    r = subprocess.run(["mount", "-o", "remount,ro", str(d)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return ["bags", d], 1, "ro/bags.h5: cannot write the bag store: read-only file system"


CASES = {
    # the dataset
    "no-directory": lambda b, t, m: (["bags", t / "nope"], 1, "not a dataset directory"),
    "no-dataset-h5": lambda b, t, m: (["bags", t], 1, "no dataset.h5"),
    "add-study-without-dataset-h5": lambda b, t, m: (["bags", b["ds"], "--add-study", t], 1, "no dataset.h5"),
    "readonly-destination": readonly,
    # what the data give
    "no-significant-variant": opt("--p-threshold", "1e-40", code=1,
                                  needle="no variant with p < 1e-40 (--p-threshold): the smallest p is 1.04e-25 (|z| = 10.5, rs9614670)"),
    "no-bag-left": opt("--min-bag-size", "500", "--max-bag-size", "600", code=1,
                       needle="no positive bag left: all 5 blocks have fewer than --min-bag-size 500"),
    "no-negative-left": opt("--neg-exclude-kb", "100000", code=1, needle="no negative variant"),
    # options out of range (click usage errors, exit 2)
    "p-threshold-0": opt("--p-threshold", "0"),
    "p-threshold-1": opt("--p-threshold", "1"),
    "p-threshold-nan": opt("--p-threshold", "nan"),
    "clump-r2-above-1": opt("--clump-r2", "1.5"),
    "clump-r2-negative": opt("--clump-r2", "-0.1"),
    "clump-kb-negative": opt("--clump-kb", "-1"),
    "clump-kb-inf": opt("--clump-kb", "inf"),
    "min-bag-size-0": opt("--min-bag-size", "0"),
    "max-below-min": opt("--min-bag-size", "20", "--max-bag-size", "10", needle="--max-bag-size"),
    "neg-p-min-1": opt("--neg-p-min", "1"),
    "neg-p-min-negative": opt("--neg-p-min", "-0.5"),
    "neg-maf-min-above-half": opt("--neg-maf-min", "0.6"),
    "neg-exclude-kb-negative": opt("--neg-exclude-kb", "-10"),
    "drop-unknown-without-blocks": opt("--drop-unknown", code=1, needle="--drop-unknown applies to --blocks"),
    "add-study-with-blocks": blocks_case(lambda b: HEADER + good_rows(b), "cannot be combined with --blocks",
                                         extra=("--add-study", "x")),
    # --blocks files
    "blocks-missing-file": lambda b, t, m: (["bags", b["ds"], "--blocks", t / "nope.tsv"], 1, "no such file"),
    "blocks-empty": blocks_case(lambda b: "", "blocks.tsv: empty file (expected a header line: chr bp rsid"),
    "blocks-header-only": blocks_case(lambda b: HEADER, "blocks.tsv: no rows after the header"),
    "blocks-missing-columns": blocks_case(lambda b: "chr\tbp\trsid\tp\n22\t1\trs1\t0.1\n",
                                          "blocks.tsv, line 1: missing columns 'ea', 'nea', 'block_id'"),
    "blocks-unknown-variant": blocks_case(with_row("22\t123\trs_nowhere\tA\tC\t1e-9\tB1\n"),
                                          "blocks.tsv, line 7: variant 'rs_nowhere' (chr22:123 A/C) is not in the dataset"),
    "blocks-bad-p": blocks_case(with_row("22\t123\trs1\tA\tC\tsmall\tB1\n"),
                                "blocks.tsv, line 7, column 'p': expected a p-value, got 'small'"),
    "blocks-p-above-1": blocks_case(with_row("22\t123\trs1\tA\tC\t1.5\tB1\n"),
                                    "line 7, column 'p': expected a p-value in [0, 1], got '1.5'"),
    "blocks-p-nan": blocks_case(with_row("22\t123\trs1\tA\tC\tnan\tB1\n"), "line 7, column 'p': expected a p-value in"),
    "blocks-bad-bp": blocks_case(with_row("22\t12x3\trs1\tA\tC\t0.1\tB1\n"),
                                 "line 7, column 'bp': expected an integer position, got '12x3'"),
    "blocks-bad-chrom": blocks_case(with_row("chrUn\t123\trs1\tA\tC\t0.1\tB1\n"), "line 7, column 'chr': expected a chromosome"),
    "blocks-short-row": blocks_case(with_row("22\t123\trs1\n"), "line 7: 3 fields, the header has 7"),
    "blocks-two-chromosomes": blocks_case(with_row("21\t123\trs1\tA\tC\t0.1\tB1\n"),
                                          "line 7: block 'B1' spans two chromosomes (22 from line 2, 21 here)"),
    "blocks-all-too-small": blocks_case(lambda b: HEADER + good_rows(b, 5), "no positive bag left: all 1 blocks"),
}


@pytest.fixture
def mounts():
    points = []
    yield points
    for p in reversed(points):
        subprocess.run(["umount", "-l", str(p)], capture_output=True)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name, base, tmp_path, mounts):
    args, code, needle = CASES[name](base, tmp_path, mounts)
    before = tree(tmp_path, base["tmp"])
    r = invoke(args)
    exc = None if r.exception is None or isinstance(r.exception, SystemExit) else r.exception
    assert exc is None, repr(exc)
    assert r.exit_code == code, (args, r.stdout, r.stderr)
    assert "Traceback" not in r.stdout + r.stderr
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    if code == 1:
        assert len(lines) == 1, r.stderr
    else:  # click's usage error: usage and hint lines, then one "Error:" line
        lines = [line for line in lines if line.startswith("Error: ")]
        assert len(lines) == 1, r.stderr
    assert lines[0].startswith("Error: ")
    assert needle in lines[0], (needle, lines[0])
    assert tree(tmp_path, base["tmp"]) == before, "the command left something behind"
    assert not any(p.name.startswith(".bags.h5") or p.name == "bags.h5" for p in tmp_path.rglob("*"))


def test_a_failed_rerun_keeps_the_previous_store(base, tmp_path):
    d = copy_ds(base, tmp_path)
    assert invoke(["bags", d]).exit_code == 0
    before = (d / "bags.h5").read_bytes()
    r = invoke(["bags", d, "--p-threshold", "1e-40"])
    assert r.exit_code == 1 and "no variant with p <" in r.stderr
    assert (d / "bags.h5").read_bytes() == before
    assert sorted(p.name for p in d.iterdir()) == ["bags.h5", "dataset.h5"]


def test_full_disk_is_one_error_and_leaves_nothing(base, tmp_path, mounts):
    """Run in a child process: an HDF5 write that fails on a full disk leaves that
    process's HDF5 library unusable, which matters to the test process only."""
    d = tmp_path / "full"
    d.mkdir()
    size = (base["ds"] / "dataset.h5").stat().st_size + 8 * 1024
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()})")
    mounts.append(d)
    shutil.copy(base["ds"] / "dataset.h5", d / "dataset.h5")
    r = subprocess.run([sys.executable, "-m", "varfx", "bags", str(d)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stdout + r.stderr and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "no space left" in lines[0], r.stderr
    assert "bags.h5" in lines[0]
    assert sorted(p.name for p in d.iterdir()) == ["dataset.h5"]
