"""The shared option types: NaN and infinities never pass; chromosome lists mean the
same for every option."""

import click
import pytest

from varfx.cli_types import FRACTION_OPEN, POSITIVE, FiniteFloat, parse_chroms
from varfx.errors import UserError


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "banana", ""])
def test_finite_float_refuses_non_numbers(text):
    with pytest.raises(click.BadParameter):
        FiniteFloat().convert(text, None, None)


@pytest.mark.parametrize("kind,text,ok", [(POSITIVE, "0", False), (POSITIVE, "1e-9", True), (POSITIVE, "-1", False),
                                          (FRACTION_OPEN, "0", False), (FRACTION_OPEN, "1", False),
                                          (FRACTION_OPEN, "0.5", True)])
def test_finite_float_bounds(kind, text, ok):
    if ok:
        assert kind.convert(text, None, None) == float(text)
    else:
        with pytest.raises(click.BadParameter):
            kind.convert(text, None, None)


def test_parse_chroms():
    assert parse_chroms("none", "--x") == []
    assert parse_chroms("all", "--x") is None
    assert parse_chroms("8, chr6,7,6", "--x") == [6, 7, 8]
    assert parse_chroms("all", "--x", available=[1, 2]) == [1, 2]
    with pytest.raises(UserError, match="chromosome 3 is not in the dataset .it has 1, 2"):
        parse_chroms("3", "--x", available=[1, 2])
    for bad in ("X", "1;2", "0", "-1"):
        with pytest.raises(UserError, match="--x"):
            parse_chroms(bad, "--x")


@pytest.mark.parametrize("text, chroms", [
    ("CHR7", [7]),                  # any case of the prefix, as in a sumstats file
    ('"6", chr22', [6, 22]),        # quoted, as R's write.table writes names
    ("\ufeff6,7", [6, 7]),          # a byte-order mark pasted in front
    ("6,,7,", [6, 7]),              # empty items are skipped
    (" chr1 , 22 ", [1, 22]),
])
def test_parse_chroms_reads_names_as_every_input_file_does(text, chroms):
    from varfx.genome import chrom_code

    assert parse_chroms(text, "--x") == chroms
    # the same reading as the input files' parser, item by item
    assert sorted({chrom_code(t) for t in text.split(",") if t.strip()}) == chroms


@pytest.mark.parametrize("bad", ["23", "chrX", "MT", "chr", "chr6_random", "6.0", "+6", "chr-1"])
def test_parse_chroms_refuses_what_is_not_an_autosome(bad):
    # a dataset holds chromosomes 1-22 only (ingest filters the rest)
    with pytest.raises(UserError, match=r"option --holdout-chroms: expected comma-separated chromosome numbers "
                                        r"\(1-22, with or without 'chr'\), 'all' or 'none', got"):
        parse_chroms(f"6,{bad}", "--holdout-chroms")


def test_parse_chroms_keeps_the_cli_free_of_numpy():
    import subprocess
    import sys

    code = ("import sys, varfx.cli, varfx.cli_types as t; t.parse_chroms('chr6,7', '--x'); "
            "print('numpy' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
