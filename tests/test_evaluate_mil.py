"""The fine-mapping measures of `varfx evaluate` (varfx/stages/evaluate_mil.py) against
brute-force counts, and the truth file's errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from varfx.errors import UserError
from varfx.stages.evaluate_mil import auroc, pair_auroc, read_causal, within_bag_pairs
from varfx.store.bags import Bag


def test_auroc_matches_counting_every_pair_with_ties():
    rng = np.random.default_rng(0)
    pos = rng.integers(0, 5, 40).astype(float)  # many ties
    neg = rng.integers(0, 4, 55).astype(float)
    brute = np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)])
    assert auroc(pos, neg) == pytest.approx(brute, abs=1e-12)


def test_pair_auroc_counts_pairs_the_right_way_round():
    assert pair_auroc([3, 1, 2], [1, 2, 2]) == pytest.approx((1 + 0 + 0.5) / 3)
    assert np.isnan(pair_auroc([], []))


def test_within_bag_pairs_take_the_members_in_strong_ld_with_the_causal_variant():
    causal = np.zeros(10, np.int8)
    causal[[2, 7]] = 1
    bags = [Bag(0, "a", 1, 0, 1, np.array([2, 0, 1, 3])),  # causal 2
            Bag(1, "b", 1, 0, 1, np.array([4, 5])),  # no causal: not used
            Bag(2, "c", 2, 0, 1, np.array([8, 7, 9]))]  # causal 7
    r2 = {0: np.array([1.0, 0.6, 0.49, 0.5]), 2: np.array([0.9, 1.0, 0.1])}
    ci, nj, used, chance = within_bag_pairs(bags, causal, lambda bag, c: r2[bag.index], r2_min=0.5)
    assert used == 2
    assert sorted(zip(ci.tolist(), nj.tolist())) == [(2, 0), (2, 3), (7, 8)]
    assert chance == pytest.approx((1 / 4 + 1 / 3) / 2)


def test_read_causal(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("SNP\tCHR\tcausal\nrs1\t1\t1\nrs2\t1\t0\nrs9\t1\t1\n")
    assert read_causal(p, ["rs2", "rs1", "rs3"]).tolist() == [0, 1, -1]


@pytest.mark.parametrize("text, message", [
    ("", "empty truth file"),
    ("SNP\tF\nrs1\t0.1\n", "missing column 'causal'"),
    ("SNP\tcausal\nrs1\t0.5\n", "line 2"),
    ("SNP\tcausal\nrs1\n", "1 columns"),
])
def test_read_causal_errors_name_the_file_and_line(tmp_path, text, message):
    p = tmp_path / "t.tsv"
    p.write_text(text)
    with pytest.raises(UserError, match=message) as e:
        read_causal(p, ["rs1"])
    assert str(p) in str(e.value) and "\n" not in str(e.value)
