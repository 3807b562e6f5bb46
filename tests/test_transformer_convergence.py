"""Does a transformer fit converge: does a longer run change the result materially?
(issue 8, section 2).  A tiny network (width 8, depth 1) on a 2-chromosome simulation
with a GLM truth over a bigWig and a BED track; chromosome 22 held out; the measure is
the held-out RMSE of log f against the truth.

Measured on this data set (3000 variants, full-batch AdamW, held-out RMSE; the GLM fitted
by L-BFGS reaches 0.08, the constant prior 1.42):

- lr 1e-4 (the paper's, the default until it was measured): 1.59 after 100 epochs, 1.57 after 200 (the
  held-out loss moves by 0.001-0.003 of the 0.11 that lr 1e-2 gains): nothing learnt.
- lr 1e-2 without early stopping: 1.26 and 4.49 (it overfits the 1500 training variants).
- lr 1e-2 with --patience 10 (the best validation epoch kept): 0.525 and 0.524.

So the early-stopped fit at 1e-2 is what this test holds to: the result must not depend
on the length of the schedule.  1e-2 and patience 10 are now the transformer's defaults
(docs/benchmarks.md); the test passes them explicitly, so that it pins the setting
rather than whatever the defaults become.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from varfx.cli import cli
from varfx.testing.data import write_subset
from varfx.testing.features import write_bed, write_bigwig

pytestmark = pytest.mark.slow


def run(args):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r


@pytest.fixture(scope="module")
def two_chrom_sim(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trconv")
    prefix, _ = write_subset(tmp / "in", 2000, 3000)
    bim = open(f"{prefix}.bim").read().splitlines()
    # the second half of the variants is relabelled chromosome 21, so that whole
    # chromosome can be trained on and chromosome 22 held out (the panel has only 22)
    half = len(bim) // 2
    bim = [("21" + line[line.index("\t"):]) if i >= half else line for i, line in enumerate(bim)]
    open(f"{prefix}.bim", "w").write("\n".join(bim) + "\n")
    bp = np.array([int(line.split()[3]) for line in bim])
    lo, hi = int(bp.min()) - 2000, int(bp.max()) + 2000
    rng = np.random.default_rng(0)
    vals = np.full(hi, np.nan)
    vals[lo:hi] = rng.gamma(2.0, 1.0, hi - lo)
    write_bigwig(tmp / "signal.bw", {"chr21": vals, "chr22": vals})
    n_peaks = (hi - lo) // 4000
    write_bed(tmp / "peaks.bed", sorted((c, int(s), int(s) + 400) for c in ("chr21", "chr22")
                                        for s in rng.integers(lo, hi, n_peaks)))
    (tmp / "m.tsv").write_text("name\tpath\nsignal\tsignal.bw\npeaks\tpeaks.bed\n")
    sim, ds = tmp / "sim", tmp / "ds"
    run(["simulate", "--ld", prefix, "--truth", "glm", "--annotations", tmp / "m.tsv", "--feature-window", 32,
         "--h2", 0.2, "--n", 200000, "--seed", 1, "--block-kb", 1000, "-o", sim, "--json"])
    run(["ingest", "--sumstats", sim / "sumstats.fastGWA.gz", "--ld", prefix, "--annotations", tmp / "m.tsv",
         "--feature-window", 32, "-o", ds, "--json"])
    run(["precompute-ld", ds, "--window-kb", 1000, "--flank-kb", 0, "--json"])
    return tmp, sim, ds


def _held_out_rmse(tmp, sim, ds, name, args):
    model = tmp / name
    run(["fit", ds, *args, "--sigma2", 1, "--holdout-chroms", "22", "-o", model])
    ev = json.loads(run(["evaluate", model, ds, "--chroms", "22", "--truth", sim / "truth.tsv", "--json"]).stdout)
    return ev["rmse_log_f"], json.loads((model / "model.json").read_text())


def test_early_stopped_transformer_does_not_depend_on_the_run_length(two_chrom_sim):
    tmp, sim, ds = two_chrom_sim
    base, _ = _held_out_rmse(tmp, sim, ds, "const", ["--prior", "constant"])
    net = ["--prior", "transformer", "-p", "width=8", "-p", "depth=1", "--lr", 1e-2, "--patience", 10, "--seed", 0]
    e1, m1 = _held_out_rmse(tmp, sim, ds, "e100", [*net, "--epochs", 100])
    e2, m2 = _held_out_rmse(tmp, sim, ds, "e200", [*net, "--epochs", 200])
    assert m1["weights"] == m2["weights"] == "best validation epoch"
    gain = base - e1
    # it learnt: most of the way from the constant prior's error (1.42 measured) towards
    # the truth (0.52 measured), so the comparison below means something
    assert gain > 0.5 * base, (base, e1)
    # "materially": a change of more than a tenth of what the fit gains over the constant
    # prior (measured: 4e-4 of it).  The two runs share the seed and the data and differ
    # only in how slowly the cosine schedule decays.
    assert abs(e2 - e1) < 0.1 * gain, (e1, e2, gain)
