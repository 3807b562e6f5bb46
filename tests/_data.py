"""Paths to the real chr22 data (../shared/data, else the bundled varfx/example_data/)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from varfx.testing import data as _d

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CHR22 = SHARED / "chr22_1000g_ukb_height"
if CHR22.is_dir():
    PANEL = CHR22 / _d.PANEL_NAME
    SUMSTATS = CHR22 / _d.SUMSTATS_NAME
else:  # the bundled copy of the same files
    PANEL = _d.EXAMPLE_DATA / _d.PANEL_NAME
    SUMSTATS = _d.EXAMPLE_DATA / _d.SUMSTATS_NAME

read_bed_dosages = _d.read_bed_dosages
write_subset = partial(_d.write_subset, panel=PANEL, sumstats=SUMSTATS)


def mixed_n_dataset(directory: Path) -> Path:
    """~600 real chr22 variants whose N alternates between n and 3n (a meta-analysis),
    ingested and precomputed (500-kb windows, 250-kb flanks) under ``directory/ds``."""
    from click.testing import CliRunner

    from varfx.cli import cli

    prefix, ss = write_subset(directory / "in", 2000, 600)
    lines = ss.read_text().splitlines()
    col = lines[0].split("\t").index("N")
    out = [lines[0]]
    for i, line in enumerate(lines[1:]):
        f = line.split("\t")
        f[col] = str(150_000 if i % 2 else 450_000)
        out.append("\t".join(f))
    ss.write_text("\n".join(out) + "\n")
    ds = directory / "ds"
    run = CliRunner()
    r = run.invoke(cli, ["ingest", "--sumstats", str(ss), "--ld", str(prefix), "-o", str(ds), "--json"])
    assert r.exit_code == 0, r.output
    r = run.invoke(cli, ["precompute-ld", str(ds), "--window-kb", "500", "--flank-kb", "250", "--json"])
    assert r.exit_code == 0, r.output
    return ds


def without_windows(ds: Path, tmp_path: Path, name: str = "ds") -> Path:
    """A copy of dataset ``ds`` (its dataset.h5 only) under ``tmp_path/name``: the
    dataset without its windows.  copy2 keeps the mtime, which windows.h5 records
    (``dataset_mtime_ns``), so a store computed there links to it as to the original."""
    import shutil

    d = Path(tmp_path) / name
    d.mkdir()
    shutil.copy2(Path(ds) / "dataset.h5", d / "dataset.h5")
    return d


def precomputed_subset(directory: Path, n_snps: int, precompute_options, start: int = 2000) -> tuple[Path, dict]:
    """Ingest ``n_snps`` chr22 SNPs (from row ``start``) into ``directory/ds`` and
    precompute its windows with ``precompute_options``; returns the dataset and the
    precompute summary (asserting both commands succeed)."""
    import json

    from _cli import ok

    prefix, ss = write_subset(Path(directory) / "in", start, n_snps)
    ds = Path(directory) / "ds"
    ok(["ingest", "--sumstats", ss, "--ld", prefix, "-o", ds, "--json"])
    return ds, json.loads(ok(["precompute-ld", ds, *precompute_options, "--json"]).stdout)


def in_sample_glm_store(tmp: Path, n_snps: int, *, annot_seed: int, h2: float, n: float, sim_seed: int) -> dict:
    """A GLM simulation on ``n_snps`` real chr22 variants with random annotations, its
    summary statistics ingested with the same panel (in-sample LD) and precomputed in
    250-kb windows without flanks (= the simulation's LD blocks, no LD correction).
    Returns ``{"sim", "ds", "annotations"}`` (the CLI's ``--annotations`` arguments)."""
    import numpy as np

    from varfx.testing.features import write_random_annotations

    from _cli import ok

    prefix, _ = write_subset(tmp / "in", 2000, n_snps)
    snps = [line.split()[1] for line in open(f"{prefix}.bim")]
    write_random_annotations(tmp / "annot.tsv", snps, np.random.default_rng(annot_seed))
    (tmp / "m.tsv").write_text("name\tpath\tkind\nannot\tannot.tsv\ttable\n")
    ann = ["--annotations", tmp / "m.tsv"]
    sim, ds = tmp / "sim", tmp / "ds"
    ok(["simulate", "--ld", prefix, "--truth", "glm", *ann, "--h2", h2, "--n", n, "--seed", sim_seed,
        "--block-kb", 250, "-o", sim, "--json"])
    ok(["ingest", "--sumstats", sim / "sumstats.fastGWA.gz", "--ld", prefix, *ann, "-o", ds, "--json"])
    ok(["precompute-ld", ds, "--window-kb", 250, "--flank-kb", 0, "--ld-correction", "none", "--json"])  # in-sample
    return {"sim": sim, "ds": ds, "annotations": ann}


def central_hessian(f, x, eps: float = 1e-3):
    """The Hessian of ``f`` at ``x`` by central differences (a dense reference)."""
    import numpy as np

    k = len(x)
    H = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            ei, ej = np.eye(k)[i] * eps, np.eye(k)[j] * eps
            H[i, j] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4 * eps * eps)
    return H
