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
