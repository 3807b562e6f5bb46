"""``fit --holdout-region``: windows held out within one chromosome, with a buffer.

The unit tests of :func:`varfx.train.setup.select` use synthetic windows (which window
goes where is a matter of indices); one end-to-end fit checks what model.json records
and that the validation loss is computed on the held-out windows only."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from varfx.cli import cli
from varfx.errors import UserError
from varfx.train.setup import resolve_holdout_regions, select


def _windows(flank):
    """Ten 1-Mb windows of chromosome 22 with 10 core variants each and ``flank``
    variants of each neighbour in their flanks."""
    out = []
    for i in range(10):
        core = np.arange(10 * i, 10 * i + 10)
        plus = np.arange(max(0, 10 * i - flank), min(100, 10 * i + 10 + flank))
        out.append(SimpleNamespace(index=i, chrom=22, start=16_000_000 + i * 1_000_000,
                                   end=17_000_000 + i * 1_000_000, core_idx=core, plus_idx=plus, k=5))
    return out


def test_windows_whose_core_starts_in_the_region_validate():
    w = _windows(0)
    regions = resolve_holdout_regions(["22:23000000-51304566"], w)
    train, val = select(w, set(), regions)
    assert [x.index for x in val] == [7, 8, 9]
    assert [x.index for x in train] == list(range(7))  # no flank: no buffer


def test_a_training_window_reaching_a_held_out_core_is_a_buffer():
    w = _windows(3)
    train, val = select(w, set(), resolve_holdout_regions(["22:20000000-20999999"], w))
    assert [x.index for x in val] == [4]
    # windows 3 and 5 have window 4's core variants in their flanks
    assert [x.index for x in train] == [0, 1, 2, 6, 7, 8, 9]


def test_chromosomes_and_regions_combine():
    w = _windows(0) + [SimpleNamespace(index=10, chrom=21, start=0, end=10**6, core_idx=np.arange(100, 110),
                                       plus_idx=np.arange(100, 110), k=3)]
    train, val = select(w, {21}, resolve_holdout_regions(["chr22:16000000-16500000"], w))
    assert sorted(x.index for x in val) == [0, 10]
    assert len(train) == 9


@pytest.mark.parametrize("text, expect", [("22:60000000-70000000", "no window's core starts in"),
                                          ("banana", "bad region"), ("22:5-1", "end before start")])
def test_a_region_without_windows_or_malformed_is_an_error(text, expect):
    with pytest.raises(UserError, match=expect):
        resolve_holdout_regions([text], _windows(0))


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    from _data import write_subset

    tmp = tmp_path_factory.mktemp("hr")
    prefix, ss = write_subset(tmp / "in", 2000, 600)
    ds = tmp / "ds"
    run = CliRunner()
    assert run.invoke(cli, ["ingest", "--sumstats", str(ss), "--ld", str(prefix), "-o", str(ds), "--json"]).exit_code == 0
    r = run.invoke(cli, ["precompute-ld", str(ds), "--window-kb", "250", "--flank-kb", "100", "--json"])
    assert r.exit_code == 0, r.output
    return ds


def test_fit_records_the_region_and_validates_on_it(ds, tmp_path):
    from varfx.store.windows import load_windows

    windows, _ = load_windows(ds, meta_only=True)
    windows = [w for w in windows if w.k > 0]
    cut = windows[len(windows) // 2].start  # the second half of the windows validate
    region = f"22:{cut}-"
    r = CliRunner().invoke(cli, ["fit", str(ds), "--prior", "constant", "--holdout-region", region,
                                 "--epochs", "2", "-o", str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["holdout_regions"] == [region] and meta["holdout_chroms"] == []
    n_val = sum(1 for w in windows if w.start >= cut)
    assert meta["n_val_windows"] == n_val
    # with 100-kb flanks on 250-kb windows, the last training window reaches the first held-out core
    assert 0 < meta["n_train_windows"] < len(windows) - n_val
    assert meta["curve"][-1]["val_loss"] is not None


def test_a_bag_objective_refuses_a_region(ds, tmp_path):
    r = CliRunner().invoke(cli, ["fit", str(ds), "--objective", "mil", "--holdout-region", "22:1-",
                                 "-o", str(tmp_path / "m")])
    assert r.exit_code == 1 and "held out by chromosome" in r.output, r.output


def test_evaluate_defaults_to_the_held_out_windows_of_a_region(ds, tmp_path):
    from varfx.store.windows import load_windows

    windows, _ = load_windows(ds, meta_only=True)
    windows = [w for w in windows if w.k > 0]
    cut = windows[len(windows) // 2].start
    run = CliRunner()
    for name, extra in (("constant", []), ("alpha0", ["--alpha", "0"])):
        r = run.invoke(cli, ["fit", str(ds), "--prior", "constant", *extra, "--holdout-region", f"22:{cut}-",
                             "-o", str(tmp_path / name)])
        assert r.exit_code == 0, r.output
    r = run.invoke(cli, ["evaluate", str(tmp_path / "constant"), str(ds), "--json"])
    assert r.exit_code == 0, r.output
    one = json.loads(r.output)
    assert one["n_windows"] == sum(1 for w in windows if w.start >= cut)
    # the jackknife refits on the windows fit trained on (the counts model.json records)
    assert one["h2_se"] is not None and one["h2_se"] > 0, one["h2_se_method"]
    r = run.invoke(cli, ["evaluate", str(tmp_path / "constant"), str(tmp_path / "alpha0"), str(ds), "--json"])
    assert r.exit_code == 0, r.output
    both = json.loads(r.output)
    assert both["n_windows"] == one["n_windows"]
    # a model trained on the whole chromosome cannot be compared on the held-out windows by default
    r = run.invoke(cli, ["fit", str(ds), "--prior", "constant", "--holdout-chroms", "none",
                         "-o", str(tmp_path / "all")])
    assert r.exit_code == 0, r.output
    r = run.invoke(cli, ["evaluate", str(tmp_path / "constant"), str(tmp_path / "all"), str(ds)])
    assert r.exit_code == 1 and "in-sample for one model only" in r.output, r.output
