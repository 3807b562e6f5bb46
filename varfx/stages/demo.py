"""``varfx demo``: the whole pipeline on the bundled example data.

ingest (UK Biobank height chr22 + 1000 Genomes chr22 panel) -> precompute-ld ->
fit (constant prior, full likelihood, exact Cholesky) -> evaluate -> score.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import UserError


def find_example_data(data=None) -> Path:
    """The example data: the directory given, else the copy installed with the package
    (``varfx/example_data/``, package data, so the demo runs from a plain ``pip install``)."""
    candidates = [Path(data)] if data else [Path(__file__).resolve().parents[1] / "example_data"]
    for c in candidates:
        if (c / "ukb_height_chr22.fastGWA.gz").is_file() and (c / "1000G_eur_chr22.bed").is_file():
            return c
    raise UserError(
        "example data not found (expected ukb_height_chr22.fastGWA.gz and 1000G_eur_chr22.bed/.bim/.fam); "
        "reinstall varfx or pass --data", path=candidates[0])


def run_demo(out, data=None, epochs=None) -> dict:
    if epochs is not None and (int(epochs) != epochs or epochs < 1):
        raise UserError(f"option --epochs: expected a whole number >= 1, got {epochs}")
    data = find_example_data(data)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError("exists and is not a directory: expected a directory for the demo outputs", path=out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _run(out, data, epochs)
    except BaseException:
        # every stage of the demo is recomputed on a re-run, so a failed demo (a full
        # disk, an interrupt) removes the directory it created rather than leave a part
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


def _run(out: Path, data: Path, epochs: int | None) -> dict:
    from ..ui import console, print_summary
    from .evaluate import run_evaluate
    from .fit import run_fit
    from .ingest import run_ingest
    from .precompute import run_precompute
    from .score import run_score

    con = console()
    dataset, model = out / "dataset", out / "model"

    con.rule("1/5 ingest")
    s = run_ingest(sumstats=str(data / "ukb_height_chr22.fastGWA.gz"), ld=str(data / "1000G_eur_chr22"),
                   out=str(dataset), progress=True)
    print_summary("ingest", s)
    con.rule("2/5 precompute-ld")
    print_summary("precompute-ld", run_precompute(dataset, window_kb=1000, flank_kb=1000, progress=True))
    con.rule("3/5 fit (constant prior, full likelihood, Cholesky)")
    print_summary("fit", run_fit(dataset, model, prior="constant", objective="full", solver="cholesky",
                                 alpha=0.0, holdout_chroms=[], epochs=epochs, progress=True))
    # (epochs None: fit's default, L-BFGS to the maximum of the likelihood)
    con.rule("4/5 evaluate (chr22; in-sample: the example has one chromosome)")
    ev = run_evaluate(model, dataset, chroms=None)
    print_summary("evaluate", ev)
    con.rule("5/5 score")
    n = run_score(model, dataset, out / "scores.tsv")
    con.print(f"wrote F for {n} variants to {out / 'scores.tsv'}")
    from ..store import write_json_atomic

    write_json_atomic(out / "evaluate.json", ev)
    con.print(f"[bold green]demo finished[/]: outputs in {out}/ (dataset/, model/, evaluate.json, scores.tsv)")
    return ev
