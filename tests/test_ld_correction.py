"""The LD-panel correction of precompute-ld (issue 12): the truncated factors against a
dense computation of the same projected model, the rule that chooses the truncation,
the auto default by panel size, the options' errors and the store's params."""

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from varfx.cli import cli
from varfx.errors import UserError
from varfx.linalg.window import factorise_window, kept_rank

from _data import write_subset


def invoke(args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _panel_R(rng, n_plus=30, n_people=60):
    g = rng.standard_normal((n_people, n_plus)) @ np.triu(rng.uniform(0, 1, (n_plus, n_plus)) ** 4)
    return np.corrcoef(g, rowvar=False)


@pytest.mark.parametrize("max_rank,var_share,r_min,core_frac,floor", [
    (5, None, None, None, None), (None, 0.9, None, None, None), (8, 0.99, 0.2, None, None),
    (5, None, 0.35, None, None), (8, None, 0.2, 0.25, None), (2, None, None, 0.5, None),
    (None, None, None, None, 1.0), (12, None, 0.2, 0.9, 1.0), (None, None, None, None, 0.3)])
def test_truncated_factors_match_the_dense_projected_likelihood(max_rank, var_share, r_min, core_frac, floor):
    """With V_k the top k eigenvectors of R_(i),(i), the model is V_k^T beta ~ N(0, V_k^T A V_k),
    A = R~_(i),+ F R~_+,(i) + sigma2 R_(i),(i) with R~ the correlations whose core-flank entries
    below ``r_min`` are 0: the reduced loss plus log|Lambda| must equal its dense loss, and
    z/G their definitions."""
    rng = np.random.default_rng(3)
    R = _panel_R(rng)
    core = np.arange(8, 22)
    beta = rng.standard_normal(len(core)) * 0.01
    f = rng.uniform(0.5, 2.0, R.shape[0]) * 1e-4
    s2 = 1e-4
    w = factorise_window(R, core, beta, max_rank=max_rank, var_share=var_share, flank_r_min=r_min,
                         core_rank_frac=core_frac, eig_floor=floor)
    lam, V = np.linalg.eigh(R[np.ix_(core, core)])
    lam, V = lam[::-1], V[:, ::-1]
    k_thr = int(np.sum(lam > 1e-3 * lam[0]))
    k = k_thr if max_rank is None else min(k_thr, max_rank)
    if core_frac is not None:  # 14 core variants: 0.25 keeps 3 (under max_rank 8), 0.5 keeps 7 (over 2)
        k = min(k, int(core_frac * len(core)))
    if var_share is not None:
        k = min(k, int(np.argmax(np.cumsum(lam) / lam.sum() >= var_share)) + 1)
    if floor is not None:  # the eigenvalues of at least floor x the mean (1: a correlation block's)
        k = min(k, int(np.sum(lam >= floor * np.trace(R[np.ix_(core, core)]) / len(core))))
    assert w["k"] == k < k_thr and w["k_threshold"] == k_thr
    Vk = V[:, :k]
    Rpc = R[:, core].copy()  # R~_+,(i)
    if r_min is not None:
        flank = np.setdiff1d(np.arange(R.shape[0]), core)
        sub = Rpc[flank]
        assert 0 < np.sum(np.abs(sub) < r_min) < sub.size  # the threshold does something here
        sub[np.abs(sub) < r_min] = 0.0
        Rpc[flank] = sub
    A = Rpc.T @ np.diag(f) @ Rpc + s2 * R[np.ix_(core, core)]
    M = Vk.T @ A @ Vk
    b = Vk.T @ beta
    dense = b @ np.linalg.solve(M, b) + np.linalg.slogdet(M)[1]
    C = s2 * np.eye(k) + w["G"].T @ (f[:, None] * w["G"])
    reduced = w["z"] @ np.linalg.solve(C, w["z"]) + np.linalg.slogdet(C)[1] + w["logdet_lambda"]
    assert abs(reduced - dense) <= 1e-8 * abs(dense)
    # the same eigenvectors up to sign: G G^T and P^T P are sign-free
    np.testing.assert_allclose(w["G"] @ w["G"].T, Rpc @ Vk @ np.diag(1 / lam[:k]) @ Vk.T @ Rpc.T, atol=1e-10)
    np.testing.assert_allclose(w["ld_score"], np.sum(R[:, core] ** 2, axis=0))  # LD scores: the panel's own
    np.testing.assert_allclose(w["P"].T @ w["P"], Vk @ np.diag(1 / lam[:k]) @ Vk.T, atol=1e-8)


def test_kept_rank_rules():
    lam = np.array([5.0, 3.0, 1.0, 0.5, 0.3, 0.2, 0.002])
    assert kept_rank(lam) == 6  # 0.002 <= 1e-3 * 5 is not above the threshold
    assert kept_rank(lam, max_rank=2) == 2
    assert kept_rank(lam, max_rank=100) == 6
    # cumulative shares 0.499, 0.798, 0.898, 0.948, ...: 0.8 needs 3 components
    assert kept_rank(lam, var_share=0.8) == 3
    assert kept_rank(lam, var_share=1.0) == 6
    assert kept_rank(np.zeros(3)) == 0 and kept_rank(np.zeros(0)) == 0
    # the floor: eigenvalues of at least F x the mean (9.502 / 7 = 1.357); the first always
    assert kept_rank(lam, eig_floor=1.0) == 2
    assert kept_rank(lam, eig_floor=0.5) == 3  # 1.0 >= 0.679
    assert kept_rank(lam, eig_floor=10.0) == 1
    assert kept_rank(lam, max_rank=1, eig_floor=0.1) == 1
    # unlinked variants (R = I, every eigenvalue the mean): all kept despite rounding
    assert kept_rank(np.full(5, 1.0 - 1e-15), eig_floor=1.0) == 5


def test_in_sample_projection_is_exact_in_distribution():
    """The reason for a projection: when R is the population's, V_k^T beta_hat has exactly
    the reduced model's distribution, so the truncated likelihood stays unbiased.  Check the
    covariance of z from 20000 draws of beta_hat ~ N(R beta, sigma2 R) against C."""
    rng = np.random.default_rng(11)
    R = _panel_R(rng, n_plus=12, n_people=40)
    core = np.arange(12)
    f = np.full(12, 2e-4)
    s2 = 1e-4
    w = factorise_window(R, core, np.zeros(12), max_rank=4)
    L = np.linalg.cholesky(R + 1e-12 * np.eye(12))
    reps = 20000
    beta = rng.standard_normal((reps, 12)) * np.sqrt(f)
    bh = beta @ R + np.sqrt(s2) * rng.standard_normal((reps, 12)) @ L.T
    z = bh @ w["P"].T
    C = s2 * np.eye(4) + w["G"].T @ (f[:, None] * w["G"])
    emp = z.T @ z / reps
    # sampling SD of a covariance entry: sqrt((C_ii C_jj + C_ij^2) / reps)
    sd = np.sqrt((np.outer(np.diag(C), np.diag(C)) + C * C) / reps)
    assert np.all(np.abs(emp - C) < 5 * sd)


def test_auto_switches_by_panel_size():
    from varfx.stages.precompute import (DEFAULT_EIG_FLOOR, DEFAULT_FLANK_NOISE_Z, DEFAULT_MAX_RANK_FRAC,
                                         resolve_correction)

    cap = int(DEFAULT_MAX_RANK_FRAC * 378)
    assert resolve_correction("auto", 0, 5000)["method"] == "none"  # UKBB: panel size unknown
    assert resolve_correction("auto", 378, cap)["method"] == "none"  # no window above the cap
    assert resolve_correction("auto", 337_000, 20_000)["method"] == "none"  # a biobank-size panel
    r = resolve_correction("auto", 378, cap + 1)
    assert r == {"requested": "auto", "method": "rank", "max_rank_frac": DEFAULT_MAX_RANK_FRAC, "n_ref": 378,
                 "max_rank": cap, "core_rank_frac": DEFAULT_MAX_RANK_FRAC, "flank_noise_z": DEFAULT_FLANK_NOISE_Z,
                 "flank_r_min": DEFAULT_FLANK_NOISE_Z / 378 ** 0.5, "eig_floor": DEFAULT_EIG_FLOOR}
    assert "eig_floor" not in resolve_correction("auto", 378, cap + 1, eig_floor=0.0)  # 0: off
    assert resolve_correction("share", 0, 786, eig_floor=0.5)["eig_floor"] == 0.5
    assert "eig_floor" not in resolve_correction("auto", 378, cap)  # no correction: no floor
    assert "flank_r_min" not in resolve_correction("share", 0, 786)  # no panel size: no noise level
    assert resolve_correction("auto", 378, 786, max_rank_frac=0.5)["max_rank"] == 189
    assert resolve_correction("none", 378, 786) == {"requested": "none", "method": "none"}
    assert resolve_correction("share", 0, 786, var_share=0.9)["var_share"] == 0.9
    with pytest.raises(UserError, match="records no LD panel size"):
        resolve_correction("rank", 0, 786)
    # a panel not smaller than the GWAS (in-sample LD, a biobank): auto leaves it alone
    assert resolve_correction("auto", 378, 786, gwas_n=100_000)["method"] == "rank"
    r = resolve_correction("auto", 5000, 786, max_rank_frac=0.01, gwas_n=5000)
    assert r == {"requested": "auto", "method": "none", "reason": "panel_not_smaller_than_gwas"}
    assert resolve_correction("auto", 5001, 786, max_rank_frac=0.01, gwas_n=5000)["method"] == "none"
    assert resolve_correction("auto", 4999, 786, max_rank_frac=0.01, gwas_n=5000)["method"] == "rank"
    # asked for explicitly, the correction is applied whatever the sizes
    assert resolve_correction("rank", 5000, 786, max_rank_frac=0.01, gwas_n=5000)["method"] == "rank"


@pytest.mark.parametrize("kw,needle", [({"ld_correction": "banana"}, "--ld-correction"),
                                       ({"max_rank_frac": 0.0}, "--max-rank-frac"),
                                       ({"max_rank_frac": float("nan")}, "--max-rank-frac"),
                                       ({"var_share": 1.5}, "--var-share"),
                                       ({"flank_noise_z": -1.0}, "--flank-noise-z"),
                                       ({"eig_floor": -0.5}, "--eig-floor"),
                                       ({"eig_floor": float("inf")}, "--eig-floor")])
def test_bad_options_are_one_line_errors(kw, needle):
    from varfx.stages.precompute import check_correction_options

    args = {"ld_correction": "auto", "max_rank_frac": None, "var_share": None, "flank_noise_z": None, **kw}
    with pytest.raises(UserError) as exc:
        check_correction_options(**args)
    msg = str(exc.value)
    assert needle in msg and "\n" not in msg


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """600 chr22 variants (UKB height + the 378-person 1000G panel), ingested."""
    tmp = tmp_path_factory.mktemp("ldcorr")
    prefix, ss = write_subset(tmp / "in", 2000, 600)
    ds = tmp / "ds"
    r = invoke(["ingest", "--sumstats", ss, "--ld", prefix, "-o", ds, "--json"])
    assert r.exit_code == 0, r.output
    return ds


def _ks(ds):
    with h5py.File(ds / "windows.h5", "r") as h:
        return np.array([h["windows"][k].attrs["k"] for k in sorted(h["windows"])]), \
            np.array([h["windows"][k].attrs["k_threshold"] for k in sorted(h["windows"])]), json.loads(h.attrs["params"])


def _eigvals(ds):
    with h5py.File(ds / "windows.h5", "r") as h:
        return [h["windows"][k]["eigvals"][:] for k in sorted(h["windows"])]


def _n_core(ds):
    with h5py.File(ds / "windows.h5", "r") as h:
        return np.array([len(h["windows"][k]["core_pos"]) for k in sorted(h["windows"])])


def test_precompute_default_caps_the_rank_and_options_recompute(small):
    from varfx.stages.precompute import DEFAULT_EIG_FLOOR, DEFAULT_MAX_RANK_FRAC

    ds = small
    # the rank cap alone (the eigenvalue floor off), then the default (with the floor)
    r = invoke(["precompute-ld", ds, "--window-kb", 1000, "--flank-kb", 0, "--eig-floor", 0, "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    rep = summary["ld_correction"]
    assert "eig_floor" not in rep
    cap = int(DEFAULT_MAX_RANK_FRAC * 378)
    assert rep["requested"] == "auto" and rep["method"] == "rank" and rep["max_rank"] == cap and rep["n_ref"] == 378
    k, k_thr, params = _ks(ds)
    n_core = _n_core(ds)
    # at most frac x min(n_ref, n_core) components (the share of the rank the panel's
    # sample LD can have), and what the eigen-threshold keeps
    want = np.minimum(k_thr, np.minimum(cap, np.maximum(1, np.floor(DEFAULT_MAX_RANK_FRAC * n_core)).astype(int)))
    assert k.max() <= cap and np.all(k == want) and np.any(want < np.minimum(k_thr, cap))
    assert rep["windows_truncated"] == int(np.sum(k < k_thr)) > 0
    assert params["ld_correction"] == {key: rep[key] for key in rep if key != "windows_truncated"}
    assert "warning" not in summary
    capped = _eigvals(ds)
    r = invoke(["precompute-ld", ds, "--window-kb", 1000, "--flank-kb", 0, "--json"])
    summary = json.loads(r.stdout)
    rep = summary["ld_correction"]
    assert summary["up_to_date"] is False and rep["eig_floor"] == DEFAULT_EIG_FLOOR == 1.0
    # the floor keeps the components of at least the mean eigenvalue (1 for a correlation
    # block), the first always: below the cap's k where it binds, the same top ones
    k1, _, params = _ks(ds)
    want1 = np.array([min(len(lam), max(1, int(np.sum(lam >= 1.0 - 1e-9)))) for lam in capped])
    np.testing.assert_array_equal(k1, want1)
    assert np.any(k1 < k) and params["ld_correction"]["eig_floor"] == 1.0
    for lam, lam1 in zip(capped, _eigvals(ds)):
        np.testing.assert_allclose(lam1, lam[:len(lam1)], rtol=1e-12)
    # another option is another store: recomputed, not "up to date"
    r = invoke(["precompute-ld", ds, "--window-kb", 1000, "--flank-kb", 0, "--ld-correction", "none", "--json"])
    summary = json.loads(r.stdout)
    assert summary["up_to_date"] is False and summary["ld_correction"]["method"] == "none"
    k2, k_thr2, _ = _ks(ds)
    np.testing.assert_array_equal(k2, k_thr) and np.testing.assert_array_equal(k_thr2, k_thr)
    r = invoke(["precompute-ld", ds, "--window-kb", 1000, "--flank-kb", 0, "--ld-correction", "rank",
                "--max-rank-frac", 0.05, "--json"])
    summary = json.loads(r.stdout)
    assert summary["up_to_date"] is False and summary["ld_correction"]["max_rank"] == 18
    assert _ks(ds)[0].max() == min(18, int(0.05 * n_core.max()))
    r = invoke(["precompute-ld", ds, "--window-kb", 1000, "--flank-kb", 0, "--ld-correction", "rank",
                "--max-rank-frac", 0.05, "--json"])
    assert json.loads(r.stdout)["up_to_date"] is True


def test_declared_panel_size_drives_the_default(tmp_path):
    """``ingest --ld-people``: the declared size is the dataset's n_ref; declared as at
    least the GWAS N (LD from the GWAS sample itself) the default applies no correction,
    and says why; declared smaller than a PLINK panel's count, it is what the cap uses."""
    prefix, ss = write_subset(tmp_path / "in", 2000, 600)
    # declared smaller than the panel's 378 people; then LD from a GWAS sample of 400
    # people (N = 400: a cap of 40 components would bind, as the first case shows)
    for people, n, method in ((200, [], "rank"), (400, ["--n", 400], "none")):
        ds = tmp_path / f"ds{people}"
        r = invoke(["ingest", "--sumstats", ss, "--ld", prefix, "-o", ds, "--ld-people", people, *n, "--json"])
        assert r.exit_code == 0, r.output
        summary = json.loads(r.stdout)
        assert summary["n_ref"] == people and summary["n_ref_source"] == "declared"
        with h5py.File(ds / "dataset.h5", "r") as h:
            assert int(h.attrs["n_ref"]) == people
            assert json.loads(h.attrs["provenance"])["parameters"]["ld_people"] == people
        r = CliRunner().invoke(cli, ["precompute-ld", str(ds), "--window-kb", "1000", "--flank-kb", "0", "--json"])
        assert r.exit_code == 0, r.output
        rep = json.loads(r.stdout)["ld_correction"]
        assert rep["method"] == method
        if method == "none":
            assert rep["reason"] == "panel_not_smaller_than_gwas"
            assert "at least as many people as the GWAS" in r.stderr
        else:
            from varfx.stages.precompute import DEFAULT_MAX_RANK_FRAC as frac

            assert rep["n_ref"] == 200 and rep["max_rank"] == int(frac * 200)
            # the second case's cap would bind too: frac x min(400, n_core) below k_threshold
            n_core = _n_core(ds)
            assert np.any(_ks(ds)[1] > np.minimum(int(frac * 400), np.floor(frac * n_core)))
    r = invoke(["ingest", "--sumstats", ss, "--ld", prefix, "-o", tmp_path / "bad", "--ld-people", "2"])
    assert r.exit_code == 2 and "--ld-people" in r.output and not (tmp_path / "bad").exists()
    from varfx.stages.ingest import run_ingest

    with pytest.raises(UserError, match="--ld-people"):
        run_ingest(ss, prefix, tmp_path / "bad2", ld_people=2.5, progress=False)
    assert not (tmp_path / "bad2").exists()


def test_plain_panel_count_is_recorded_as_such(small):
    with h5py.File(small / "dataset.h5", "r") as h:
        assert int(h.attrs["n_ref"]) == 378
        assert json.loads(h.attrs["provenance"])["counts"]["n_ref_source"] == "panel"


@pytest.mark.parametrize("args,needle", [(["--ld-correction", "banana"], "--ld-correction"),
                                         (["--max-rank-frac", "0"], "--max-rank-frac"),
                                         (["--max-rank-frac", "nan"], "--max-rank-frac"),
                                         (["--var-share", "2"], "--var-share"),
                                         (["--flank-noise-z", "-1"], "--flank-noise-z"),
                                         (["--eig-floor", "-1"], "--eig-floor"),
                                         (["--eig-floor", "inf"], "--eig-floor")])
def test_cli_rejects_bad_values(small, args, needle):
    r = invoke(["precompute-ld", small, *args])
    assert r.exit_code == 2 and needle in r.output and "Traceback" not in r.output


def test_ldsr_leaves_thresholded_pairs_at_zero():
    """LDSR reads r2 back from the corrected factors; a core-flank pair the flank threshold
    set to 0 is 'no LD', so the panel-noise correction -(1 - r2)/(n_ref - 2) must not
    push it below 0, while every other pair keeps its correction."""
    import torch

    from varfx.api import Window
    from varfx.plugins import lookup

    rng = np.random.default_rng(5)
    n_ref = 60
    R = _panel_R(rng, n_plus=30, n_people=n_ref)
    core = np.arange(10, 20)
    fac = factorise_window(R, core, np.zeros(len(core)), eig_threshold=1e-9, flank_r_min=0.3)
    win = Window(index=0, chrom=1, start=0, end=1, G=torch.tensor(fac["G"]), z=torch.tensor(fac["z"]),
                 eigvals=fac["eigvals"], logdet_lambda=float(fac["logdet_lambda"]), plus_idx=np.arange(30),
                 core_idx=core, core_pos=core, ld_score=fac["ld_score"], P=torch.tensor(fac["P"]),
                 beta=torch.zeros(len(core), dtype=torch.float64), N=1e5, n_ref=n_ref)
    r2 = lookup("objectives", "ldsr")().r2(win).numpy()  # (n, n+)
    Rt = R[:, core].copy()
    flank = np.setdiff1d(np.arange(30), core)
    sub = Rt[flank]
    zero = np.abs(sub) < 0.3
    sub[zero] = 0.0
    Rt[flank] = sub
    want = Rt.T ** 2 - (1 - Rt.T ** 2) / (n_ref - 2)
    want[:, flank] = np.where(zero.T, 0.0, want[:, flank])
    want[np.arange(len(core)), core] = 1.0
    assert zero.any() and (~zero).any()
    np.testing.assert_allclose(r2, want, atol=1e-9)
