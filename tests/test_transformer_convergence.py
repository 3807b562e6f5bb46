"""Does a transformer fit converge: does a longer run change the result materially?
(issue 8, section 2).  A tiny network (width 8, depth 1) on a 2-chromosome simulation
with a GLM truth over a bigWig and a BED track; chromosome 22 held out; the measure is
the held-out RMSE of log f against the truth.

Measured on this data set (3000 variants, full-batch AdamW, held-out RMSE; the GLM fitted
by L-BFGS reaches 0.08, the constant prior 1.42):

- lr 1e-4 (the paper's, the default until it was measured): 1.59 after 100 epochs, 1.57 after 200 (the
  held-out loss moves by 0.001-0.003 of the 0.11 that lr 1e-2 gains): nothing learnt.
- lr 1e-2 without early stopping: 1.26 and 4.49 (it overfits the 1500 training variants).
- lr 1e-2 with --patience 10 (the best validation epoch kept): 0.525 and 0.524 (torch's
  former dropout stream); with the masks of transformer_kernels.keep_mask, over fit seeds
  0-7, 0.48-1.10 after 100 epochs (SD 0.187) and a change of 0.017-0.134 after 200.

So the early-stopped fit at 1e-2 is what this test holds to: the result must not depend
on the length of the schedule.  1e-2 and patience 10 are now the transformer's defaults
(docs/benchmarks.md); the test passes them explicitly, so that it pins the setting
rather than whatever the defaults become.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from varfx.cli import cli
from varfx.testing.data import two_chromosome_glm_simulation

pytestmark = pytest.mark.slow


def run(args):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r


@pytest.fixture(scope="module")
def two_chrom_sim(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trconv")
    sim, ds = two_chromosome_glm_simulation(tmp, track_seed=0, sim_seed=1)
    return tmp, sim, ds


def _held_out_rmse(tmp, sim, ds, name, args):
    model = tmp / name
    run(["fit", ds, *args, "--sigma2", 1, "--holdout-chroms", "22", "-o", model])
    ev = json.loads(run(["evaluate", model, ds, "--chroms", "22", "--truth", sim / "truth.tsv", "--json"]).stdout)
    return ev["rmse_log_f"], json.loads((model / "model.json").read_text())


#: the standard deviation of the early-stopped held-out RMSE between fit seeds 0-7 (see
#: the run-length test)
SEED_SPREAD = 0.187


def test_early_stopped_transformer_does_not_depend_on_the_run_length(two_chrom_sim):
    tmp, sim, ds = two_chrom_sim
    base, _ = _held_out_rmse(tmp, sim, ds, "const", ["--prior", "constant"])
    # full batch, as measured above (the network default is now 24 updates an epoch:
    # docs/benchmarks.md, "Defaults of network priors")
    net = ["--prior", "transformer", "-p", "width=8", "-p", "depth=1", "--lr", 1e-2, "--patience", 10, "--seed", 0,
           "--batch-windows", 0]
    e1, m1 = _held_out_rmse(tmp, sim, ds, "e100", [*net, "--epochs", 100])
    e2, m2 = _held_out_rmse(tmp, sim, ds, "e200", [*net, "--epochs", 200])
    assert m1["weights"] == m2["weights"] == "best validation epoch"
    gain = base - e1
    # it learnt: most of the way from the constant prior's error (1.42 measured) towards
    # the truth (0.48 measured), so the comparison below means something
    assert gain > 0.5 * base, (base, e1)
    # "materially": by more than the fit's own sampling spread.  The two runs share the
    # seed and the data and differ only in how slowly the cosine schedule decays, which
    # changes the trajectory from the first epoch on, as another seed does.  Measured
    # with the dropout masks of transformer_kernels.keep_mask (issue 11 item 5, round 6;
    # docs/benchmarks.md), fit seeds 0-7 of this very setting: the held-out RMSE after 100
    # epochs has a standard deviation of 0.187 between seeds (mean 0.66), and the change
    # from 100 to 200 epochs was 0.017-0.134 (seed 0: 0.017; 0.049 with the final
    # kernels, which round differently and so follow another trajectory).  So the bound is that
    # standard deviation: a longer run moves the result by less than a new seed would.
    # (The bound before, a tenth of the gain, was set on torch's former dropout stream,
    # where seed 0 moved by 4e-4; it is below the spread: 5 of the 8 seeds above exceed it.)
    assert abs(e2 - e1) < SEED_SPREAD, (e1, e2, gain)


def test_transformer_with_default_training_options_beats_the_constant_prior(two_chrom_sim):
    # issue 11 item 5: with every AdamW option at its default (lr 1e-2, 24 updates an
    # epoch, 100 epochs, warm-up + cosine, patience 10, best validation weights kept) the
    # network converges to a better held-out likelihood than the constant prior
    tmp, sim, ds = two_chrom_sim
    run(["fit", ds, "--prior", "constant", "--sigma2", 1, "--holdout-chroms", "22", "-o", tmp / "dc"])
    run(["fit", ds, "--prior", "transformer", "-p", "width=8", "--sigma2", 1, "--holdout-chroms", "22",
         "-o", tmp / "dt"])
    meta = json.loads((tmp / "dt" / "model.json").read_text())
    assert meta["weights"] == "best validation epoch" and meta["batch_windows"] == 1
    ev = json.loads(run(["evaluate", tmp / "dc", tmp / "dt", ds, "--chroms", "22", "--json"]).stdout)
    net = next(m for m in ev["models"] if m["name"] == "dt")
    # the paired held-out log-likelihood gain over the constant prior (the first model),
    # at least two of its jackknife SEs
    assert net["diff_vs_first"] > 2 * net["diff_vs_first_se"] > 0, net
