"""``varfx demo``: the DeepWAS paper in miniature, on the bundled chr22 data.

simulate (a GLM truth from three feature tracks, the real 1000 Genomes chr22 panel) ->
ingest -> precompute-ld -> fit (constant, GLM and a small transformer prior, each with
the LDSR objective and the full likelihood) -> evaluate the six models in comparison
mode on held-out windows (the last part of chr22) -> figures -> polygenic-score weights
-> ``score-vcf`` on a small VCF; then, as a part of its own (a fine-mapping model has no
likelihood to rank with the six), multiple-instance fine-mapping: ``simulate --truth
motif`` -> ingest with the FASTA -> ``bags`` -> ``fit --objective mil --prior seqcnn`` ->
``evaluate`` (within-bag ranking of the true causal variants) -> a figure of held-out
bags -> ``score-vcf`` of the simulation's variants (``VARFX_PCAUSAL``).

Why these settings (docs/tutorial.md walks through the output):

- **A simulation, not the bundled UK Biobank height statistics**: the demo's point is
  the paper's comparison, which needs a known truth (``rmse_log_f``), and the full
  likelihood needs LD from the GWAS sample (docs/benchmarks.md, "Simulation: recovery of
  h2 by LD set-up"); a 378-person panel is not the UK Biobank sample.
- **Windows of 1 Mb without flanks**: the simulation draws z with block-diagonal LD in
  1-Mb bins (``varfx simulate --block-kb``), so windows equal to those bins give the
  likelihood exactly the LD that made the data.
- **Held-out region ``22:40000000-``** (``fit --holdout-region``): one chromosome has no
  chromosome to hold out; the 11 windows from 40 Mb on are the validation and test set.
- **Feature window of 64 bp** and a transformer of width 16: a laptop fits it in a
  couple of minutes (the paper's model is ``-p width=1536 -p depth=2 -p tower=1``).
- **The MIL part on its own simulation**: the chr22 simulation's truth is a GLM of
  feature tracks, with no causal variant marked by sequence; the motif simulation
  (docs/simulate.md) has, with its own genome and in-sample panel.  Six chromosomes of 30
  LD blocks give about 100 bags of 10-25 variants; chromosome 6 is held out (about a
  sixth of the bags), and a 128-bp sequence window covers the motifs (3-39 bp from the
  variant, 10 bases long).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from ..errors import UserError

#: the bundled files the demo needs (varfx/example_data/, package data)
REQUIRED = ("1000G_eur_chr22.bed", "1000G_eur_chr22.bim", "1000G_eur_chr22.fam", "demo_annotations.tsv",
            "demo_open.bed", "demo_coding.bed", "demo_conservation.bw", "demo_calls.vcf")
HOLDOUT_REGION = "22:40000000-"
FEATURE_WINDOW = 64
SIMULATION = {"truth": "glm", "h2": 0.05, "n_gwas": 100_000, "log_sd": 1.5, "seed": 1, "block_kb": 1000}
TRANSFORMER = ("width=16", "depth=1", "tower=2", "heads=4")
TRANSFORMER_EPOCHS = 40
TRANSFORMER_BATCH = None  # the network default: 24 updates per epoch, one of the 24 training windows a step (docs/benchmarks.md)
#: the MIL part (docs/tutorial.md, "Fine-mapping"): `varfx simulate --truth motif` options,
#: the held-out chromosome, the seqcnn prior's options and its AdamW epochs
MIL_SIMULATION = {"n_chroms": 6, "blocks_per_chrom": 30, "variants_per_block": 50, "n_ref": 200, "seed": 1}
MIL_HOLDOUT = (6,)
MIL_PRIOR = ("window=128",)
MIL_EPOCHS = 15
MIL_FEATURE_WINDOW = 32  # the dataset's per-base tracks; seqcnn reads its own window from the FASTA
#: (name, prior, objective, prior options): the paper's comparison (its Fig. 4)
MODELS = (
    ("constant-ldsr", "constant", "ldsr", ()),
    ("constant-full", "constant", "full", ()),
    ("glm-ldsr", "glm", "ldsr", ()),
    ("glm-full", "glm", "full", ()),
    ("transformer-ldsr", "transformer", "ldsr", TRANSFORMER),
    ("transformer-full", "transformer", "full", TRANSFORMER),
)


def find_example_data(data=None) -> Path:
    """The example data: the directory given, else the copy installed with the package
    (``varfx/example_data/``, package data, so the demo runs from a plain ``pip install``)."""
    candidates = [Path(data)] if data else [Path(__file__).resolve().parents[1] / "example_data"]
    for c in candidates:
        if all((c / name).is_file() for name in REQUIRED):
            return c
    missing = [n for n in REQUIRED if not (candidates[0] / n).is_file()]
    raise UserError(f"example data not found (missing {', '.join(missing)}); reinstall varfx or pass --data",
                    path=candidates[0])


def run_demo(out, data=None, epochs=None, mil_epochs=None) -> dict:
    """Run the demo into ``out`` (created; removed again if the demo fails and it was new).

    ``epochs``: AdamW epochs of the transformer prior (default ``TRANSFORMER_EPOCHS``, with
    early stopping on the held-out windows); the constant and GLM priors are fitted to
    the maximum by L-BFGS either way.  ``mil_epochs``: AdamW epochs of the fine-mapping
    model (default ``MIL_EPOCHS``).  Returns the comparison (``evaluate``'s JSON) with
    the fine-mapping part under ``"mil"`` (written to ``comparison.json``)."""
    for option, value in (("--epochs", epochs), ("--mil-epochs", mil_epochs)):
        if value is not None and (int(value) != value or value < 1):
            raise UserError(f"option {option}: expected a whole number >= 1, got {value}")
    data = find_example_data(data)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError("exists and is not a directory: expected a directory for the demo outputs", path=out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _run(out, data, TRANSFORMER_EPOCHS if epochs is None else int(epochs),
                    MIL_EPOCHS if mil_epochs is None else int(mil_epochs))
    except BaseException:
        # every stage of the demo is recomputed on a re-run, so a failed demo (a full
        # disk, an interrupt) removes the directory it created rather than leave a part
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


def _run(out: Path, data: Path, epochs: int, mil_epochs: int) -> dict:
    from ..plots import plot_compare, plot_curves, plot_ldsr, plot_region, plot_truth
    from ..store import write_json_atomic
    from ..ui import console, print_summary
    from .evaluate import print_comparison, run_compare
    from .fit import run_fit
    from .ingest import run_ingest
    from .precompute import run_precompute
    from .score import run_score
    from .score_vcf import run_score_vcf
    from .simulate import run_simulate

    con = console()
    t0 = time.perf_counter()
    panel = str(data / "1000G_eur_chr22")
    annotations = str(data / "demo_annotations.tsv")
    sim, dataset, models, figures = out / "simulation", out / "dataset", out / "models", out / "figures"
    steps = 12

    con.rule(f"1/{steps} simulate: a GLM truth from three feature tracks, the 1000 Genomes chr22 panel")
    s = run_simulate(panel, sim, annotations=annotations, feature_window=FEATURE_WINDOW, progress=True,
                     **SIMULATION)
    print_summary("simulate", {k: s[k] for k in ("n_variants", "h2", "N", "features", "coefficients", "mean_chi2")})
    truth = sim / "truth.tsv"

    con.rule(f"2/{steps} ingest")
    s = run_ingest(sumstats=str(sim / "sumstats.fastGWA.gz"), ld=panel, out=str(dataset), annotations=annotations,
                   feature_window=FEATURE_WINDOW, progress=True)
    print_summary("ingest", {k: s[k] for k in ("read", "matched", "flipped", "N", "n_ref") if k in s})

    con.rule(f"3/{steps} precompute-ld (1-Mb windows without flanks: the simulation's LD blocks)")
    # in-sample: the summary statistics were simulated from this very panel, so it is the
    # GWAS sample's LD and the small-panel correction would only discard information
    run_precompute(dataset, window_kb=1000, flank_kb=0, ld_correction="none", progress=True)
    con.print("  (--ld-correction none: the panel is the GWAS sample here; with real summary statistics and a "
              "small panel precompute-ld's default corrects the factors, docs/usage.md)")

    con.rule(f"4/{steps} fit six priors (held out: {HOLDOUT_REGION})")
    dirs = []
    for name, prior, objective, opts in MODELS:
        network = prior == "transformer"
        # the network by AdamW in mini-batches of windows (one full-batch update per
        # epoch is too few for it), the others to the maximum by L-BFGS
        summary = run_fit(dataset, models / name, prior=prior, objective=objective, prior_options=opts,
                          holdout_chroms=[], holdout_regions=[HOLDOUT_REGION], progress=True,
                          epochs=epochs if network else None, batch_windows=TRANSFORMER_BATCH if network else None)
        how = (f"AdamW, {summary['epochs']} epochs" + (" (stopped early)" if summary.get("stopped_early") else "")
               if summary["optimizer"] == "adamw" else "L-BFGS to the maximum")
        con.print(f"  {name}: {how}, train loss {summary['final_train_loss']:.5g}, {summary['seconds']:.0f} s")
        dirs.append(models / name)

    con.rule(f"5/{steps} evaluate: the six models on the held-out windows")
    comparison = run_compare(dirs, dataset, truth=str(truth))
    print_comparison(comparison)
    write_json_atomic(out / "comparison.json", comparison)

    con.rule(f"6/{steps} figures")
    best = Path(comparison["models"][0]["model"])
    paths = [plot_compare(None, figures, result=comparison).path,
             plot_curves(models / "transformer-full", figures, name="curves_transformer-full.png").path,
             # the default: the variants the model held out (its --holdout-region), those
             # whose RMSE the comparison reports
             plot_truth(best, dataset, truth, figures, name=f"truth_{best.name}.png").path,
             plot_region(best, dataset, "22:42000000-44000000", figures).path,
             plot_ldsr(dataset, figures, model_dir=best).path]

    con.rule(f"7/{steps} score: F and posterior effect sizes of {best.name}, PGS Catalog scoring file")
    run_score(best, dataset, out / "scores.tsv", posterior=True, pgs_file=out / "pgs_weights.txt")

    con.rule(f"8/{steps} score-vcf: annotate a VCF with {best.name}")
    sv = run_score_vcf(best, data / "demo_calls.vcf", out / "calls.varfx.vcf.gz")
    print_summary("score-vcf", {k: v for k, v in sv.items() if not isinstance(v, (list, dict))})

    mil, mil_figure = _run_mil(out / "mil", figures, con, steps, mil_epochs)
    paths.append(mil_figure)
    comparison["mil"] = mil
    write_json_atomic(out / "comparison.json", comparison)

    for p in paths:
        print(f"wrote {p}")  # plain print: one unwrapped line per path, for scripts
    con.print(f"[bold green]demo finished in {time.perf_counter() - t0:.0f} s[/]: outputs in {out}/ "
              "(simulation/, dataset/, models/, figures/, comparison.json, scores.tsv, pgs_weights.txt, "
              "calls.varfx.vcf.gz, mil/); docs/tutorial.md explains each part")
    return comparison


def _run_mil(out: Path, figures: Path, con, steps: int, epochs: int) -> tuple[dict, Path]:
    """Steps 9-12, fine-mapping on a motif simulation; returns the ``"mil"`` summary of
    comparison.json (docs/tutorial.md) and the path of its figure."""
    from ..plots import plot_bags
    from ..ui import print_summary
    from .bags import run_bags
    from .evaluate import print_evaluation, run_evaluate
    from .fit import run_fit
    from .ingest import run_ingest
    from .score_vcf import run_score_vcf
    from .simulate_motif import FILES, SITES_FILE, run_simulate_motif

    t0 = time.perf_counter()
    sim, dataset, model = out / "simulation", out / "dataset", out / "model"
    con.rule(f"9/{steps} fine-mapping: simulate --truth motif (causal variants marked by DNA motifs) -> ingest "
             "-> bags")
    s = run_simulate_motif(sim, **MIL_SIMULATION)
    print_summary("simulate --truth motif", {k: s[k] for k in ("n_variants", "n_blocks", "n_causal", "motifs",
                                                              "N", "mean_chi2")})
    run_ingest(sumstats=str(sim / FILES["sumstats"]), ld=str(sim / FILES["panel"]), out=str(dataset),
               fasta=str(sim / FILES["fasta"]), feature_window=MIL_FEATURE_WINDOW, progress=True)
    b = run_bags(dataset, progress=True)
    con.print(f"  {b['bags']} positive bags (LD blocks of genome-wide significant variants, "
              f"{b['bag_size']['min']}-{b['bag_size']['max']} variants), {b['negatives']} negative variants")

    con.rule(f"10/{steps} fit --prior seqcnn --objective mil (held out: chromosome "
             f"{', '.join(map(str, MIL_HOLDOUT))})")
    fit = run_fit(dataset, model, prior="seqcnn", objective="mil", prior_options=MIL_PRIOR,
                  holdout_chroms=list(MIL_HOLDOUT), epochs=epochs, progress=True)
    con.print(f"  seqcnn: AdamW, {fit['epochs']} epochs, train loss {fit['final_train_loss']:.4g}, "
              f"{fit['seconds']:.0f} s")

    con.rule(f"11/{steps} evaluate: does the sequence model rank each held-out bag's causal variant first?")
    ev = run_evaluate(model, dataset, truth=str(sim / FILES["truth"]))
    print_evaluation(ev)
    figure = plot_bags(model, dataset, sim / FILES["truth"], figures, name="bags_mil.png")

    con.rule(f"12/{steps} score-vcf: VARFX_PCAUSAL for the simulation's variants")
    sv = run_score_vcf(model, sim / SITES_FILE, out / "calls.varfx.vcf.gz")
    print_summary("score-vcf", {k: v for k, v in sv.items() if not isinstance(v, (list, dict))})
    summary = {
        "simulation": {k: s[k] for k in ("n_variants", "n_blocks", "n_causal", "n_chroms", "motifs", "seed")},
        "bags": b["bags"], "negatives": b["negatives"], "model": str(model), "prior": "seqcnn", "objective": "mil",
        "epochs": fit["epochs"], "fit_seconds": fit["seconds"], "final_train_loss": fit["final_train_loss"],
        "evaluation": ev, "figure": str(figure.path), "vcf": str(out / "calls.varfx.vcf.gz"),
        "vcf_scored": sv["scored"], "seconds": time.perf_counter() - t0,
    }
    return summary, figure.path
