"""varfx score: what the output columns mean for each kind of objective, and the
checks on the values (stages/score.py)."""

from __future__ import annotations

import numpy as np
import pytest


def test_sigmoid_matches_the_formula_and_never_overflows():
    from varfx.stages.score import sigmoid

    x = np.array([-800.0, -40.0, -1.5, 0.0, 2.0, 40.0, 800.0, -np.inf, np.inf])
    with np.errstate(over="ignore"):
        naive = 1.0 / (1.0 + np.exp(-x))  # the formula; overflows to 0 at -800 (right anyway)
    p = sigmoid(x)
    assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(p, naive, rtol=1e-15, atol=0)
    # far from 0 the stable form keeps the relative precision of the tail
    assert sigmoid(np.array([-800.0]))[0] == pytest.approx(np.exp(-800.0), rel=1e-12)


def test_prior_output_read_from_the_objective_plugin():
    from varfx.errors import UserError
    from varfx.plugins import lookup
    from varfx.store.model import model_output as prior_output

    assert prior_output({"objective": {"name": "full", "options": {}}}) == "log_f"
    assert prior_output({}) == "log_f"  # a model.json without an objective: likelihood-trained
    cls = lookup("objectives", "ldsr")
    cls.prior_output = "logit"
    try:
        assert prior_output({"objective": {"name": "ldsr"}}) == "logit"
        cls.prior_output = "odds"
        with pytest.raises(UserError, match="prior_output"):
            prior_output({"objective": {"name": "ldsr"}})
    finally:
        del cls.prior_output
    with pytest.raises(UserError):
        prior_output({"objective": {"name": "no-such-objective"}})


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from click.testing import CliRunner

    from varfx.cli import cli

    from _data import write_subset

    tmp = tmp_path_factory.mktemp("score")
    prefix, ss = write_subset(tmp / "in", 1000, 200)
    ds = tmp / "ds"
    run = CliRunner()
    for args in (["ingest", "--sumstats", ss, "--ld", prefix, "-o", ds, "--json"],
                 ["precompute-ld", ds, "--window-kb", 200, "--flank-kb", 100, "--json"],
                 ["fit", ds, "--alpha", 0, "--sigma2", 1, "--holdout-chroms", "none", "-o", tmp / "m"]):
        r = run.invoke(cli, [str(a) for a in args])
        assert r.exit_code == 0, r.output
    return tmp, ds, tmp / "m"


def test_nan_logit_is_an_error_and_nothing_is_written(model, monkeypatch):
    from click.testing import CliRunner

    import varfx.stages.score as score
    from varfx.cli import cli
    from varfx.plugins import lookup

    tmp, ds, m = model
    real = score.predict_log_f

    def with_nan(*a, **kw):
        out = real(*a, **kw)
        out[3] = np.nan
        return out

    monkeypatch.setattr(score, "predict_log_f", with_nan)
    monkeypatch.setattr(lookup("objectives", "full"), "prior_output", "logit", raising=False)
    out = tmp / "p.tsv"
    r = CliRunner().invoke(cli, ["score", str(m), str(ds), "-o", str(out)])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    lines = [x for x in r.output.splitlines() if x.startswith("Error: ")]
    assert len(lines) == 1 and "logit = nan" in lines[0] and "nothing written" in lines[0]
    assert not out.exists()


def test_logit_model_writes_p_causal(model, monkeypatch):
    from click.testing import CliRunner

    from varfx.cli import cli
    from varfx.plugins import lookup

    tmp, ds, m = model
    f_out, p_out = tmp / "f.tsv", tmp / "p2.tsv"
    assert CliRunner().invoke(cli, ["score", str(m), str(ds), "-o", str(f_out)]).exit_code == 0
    monkeypatch.setattr(lookup("objectives", "full"), "prior_output", "logit", raising=False)
    r = CliRunner().invoke(cli, ["score", str(m), str(ds), "-o", str(p_out)])
    assert r.exit_code == 0, r.output
    f_rows = [x.split("\t") for x in f_out.read_text().splitlines()]
    p_rows = [x.split("\t") for x in p_out.read_text().splitlines()]
    assert p_rows[0] == ["SNP", "CHR", "BP", "P_CAUSAL", "LOGIT"] and len(p_rows) == len(f_rows)
    assert [r[:3] for r in p_rows[1:]] == [r[:3] for r in f_rows[1:]]
    logit = np.array([float(r[4]) for r in p_rows[1:]])
    np.testing.assert_allclose(logit, np.log([float(r[3]) for r in f_rows[1:]]), rtol=1e-5)
    np.testing.assert_allclose([float(r[3]) for r in p_rows[1:]], 1 / (1 + np.exp(-logit)), rtol=1e-6)
