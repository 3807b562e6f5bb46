"""ingest with --annotations, --fasta, --liftover and a VCF panel, then fit the GLM and
transformer priors on the stored features (the path from raw inputs to a trained
network prior)."""

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from varfx.cli import cli
from varfx.testing.features import write_bed, write_bigwig, write_fasta

from _data import write_subset

pytestmark = pytest.mark.slow
CHAIN = __import__("pathlib").Path(__file__).parent / "fixtures" / "hg19ToHg38.chr19_chr22.over.chain.gz"


def run(args, code=0):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exit_code == code, r.output
    return r


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("feat")
    prefix, ss = write_subset(tmp / "in", 0, 700)
    bp = np.array([int(line.split()[3]) for line in open(f"{prefix}.bim")])
    lo, hi = int(bp.min()) - 2000, int(bp.max()) + 2000
    rng = np.random.default_rng(0)
    vals = np.full(hi, np.nan)
    vals[lo:hi] = rng.gamma(2.0, 1.0, hi - lo)
    write_bigwig(tmp / "signal.bw", {"chr22": vals})
    write_bed(tmp / "peaks.bed", [("chr22", int(s), int(s) + 300) for s in rng.integers(lo, hi, 300)])
    seq = "".join(rng.choice(list("ACGT"), hi))
    write_fasta(tmp / "ref.fa", {"chr22": seq})
    (tmp / "manifest.tsv").write_text("name\tpath\nsignal\tsignal.bw\npeaks\tpeaks.bed\n")
    return tmp, prefix, ss


def test_features_stored_and_network_priors_train(inputs):
    tmp, prefix, ss = inputs
    ds = tmp / "ds"
    summary = json.loads(run(["ingest", "--sumstats", ss, "--ld", prefix, "--annotations", tmp / "manifest.tsv",
                              "--fasta", tmp / "ref.fa", "--feature-window", 64, "-o", ds, "--json"]).output)
    assert summary["matched"] > 500 and "features" in summary
    with h5py.File(ds / "dataset.h5", "r") as h5:
        M = h5["variants"]["bp"].shape[0]
        assert h5["features"]["scalar"].shape[0] == M and h5["features"]["scalar"].shape[1] >= 2
        assert h5["features"]["window"].shape[:2] == (M, 64)
        assert h5["features"]["sequence"].shape == (M, 64, 5)
        x = h5["features"]["scalar"][:]
        ok = x.std(0) > 0
        np.testing.assert_allclose(x.mean(0)[ok], 0, atol=1e-3)  # normalised
    run(["precompute-ld", ds, "--window-kb", 500, "--flank-kb", 100, "--json"])
    for prior, extra in (("glm", []), ("transformer", ["-p", "width=16", "-p", "heads=2", "-p", "dropout=0", "--amp"])):
        model = tmp / f"m-{prior}"
        run(["fit", ds, "--prior", prior, *extra, "--alpha", "learn", "--sigma2", 1, "--holdout-chroms", "none",
             "--epochs", 2, "-o", model])
        meta = json.loads((model / "model.json").read_text())
        assert meta["prior"]["name"] == prior and meta["inputs"]["n_features"] >= 2
        assert meta["amp"] == ("--amp" in extra) and np.isfinite(meta["curve"][-1]["train_loss"])
        ev = json.loads(run(["evaluate", model, ds, "--chroms", "all", "--json"]).output)
        assert np.isfinite(ev["loglik"]) and ev["h2"] > 0
        if prior == "transformer":
            # the same fit with the tracks read per batch by 2 loader processes
            m2 = tmp / "m-transformer-loader"
            run(["fit", ds, "--prior", prior, *extra, "--alpha", "learn", "--sigma2", 1, "--holdout-chroms", "none",
                 "--epochs", 2, "--loader-workers", 2, "-o", m2])
            c1 = [x["train_loss"] for x in meta["curve"]]
            c2 = [x["train_loss"] for x in json.loads((m2 / "model.json").read_text())["curve"]]
            assert c1 == pytest.approx(c2, rel=1e-6)
        out = tmp / f"{prior}.tsv"
        run(["score", model, ds, "-o", out])
        f = np.array([float(line.split("\t")[3]) for line in out.read_text().splitlines()[1:]])
        assert len(f) == M and np.all(f > 0)


def test_liftover_brings_sumstats_to_the_panel_build(inputs, tmp_path):
    """The panel is moved to hg38; hg19 sumstats need --liftover to match it."""
    from varfx.io.liftover import lift_positions, load_chain

    tmp, prefix, ss = inputs
    bim = [line.split() for line in open(f"{prefix}.bim")]
    chain = load_chain(CHAIN)
    new_chrom, new_pos, ok, _ = lift_positions(chain, np.array([22] * len(bim)), np.array([int(b[3]) for b in bim]))
    hg38 = tmp_path / "panel38"
    for ext in ("bed", "fam"):
        (tmp_path / f"panel38.{ext}").write_bytes(open(f"{prefix}.{ext}", "rb").read())
    lines = [("\t".join([b[0], b[1], b[2], str(int(p) if o else 1), b[4], b[5]])) for b, p, o in zip(bim, new_pos, ok)]
    (tmp_path / "panel38.bim").write_text("\n".join(lines) + "\n")
    r = run(["ingest", "--sumstats", ss, "--ld", hg38, "-o", tmp_path / "no-lift"], code=1)
    assert "different genome build" in r.output and "--liftover" in r.output
    assert not (tmp_path / "no-lift").exists()
    base = json.loads(run(["ingest", "--sumstats", ss, "--ld", prefix, "-o", tmp_path / "hg19", "--json"]).output)
    lifted = json.loads(run(["ingest", "--sumstats", ss, "--ld", hg38, "--liftover", CHAIN, "-o", tmp_path / "hg38",
                             "--json"]).output)
    assert lifted["build"] == "hg38" and lifted["liftover"]["read"] == base["after_filters"]
    assert base["matched"] - lifted["matched"] <= int((~ok).sum()) + sum(lifted["liftover"]["dropped"].values())
    assert lifted["matched"] > 0.95 * base["matched"]
