"""``varfx fit`` with default options on the most common inputs: LDSC sumstats (no
allele frequencies) with a UKBB/PolyFun LD reference, ingest -> precompute-ld -> fit."""

from __future__ import annotations

import gzip
import json

from click.testing import CliRunner

from varfx.cli import cli


def invoke(args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_ldsc_with_ukbb_reference_fits_with_default_options(tmp_path, write_region, fastgwa_path, panel_bim):
    rows = list(range(1000, 4000))  # 3000 panel SNPs in one UKBB region
    write_region(tmp_path / "ukbb", rows)
    wanted = {panel_bim[r][1] for r in rows}
    ss = tmp_path / "height.sumstats"
    with gzip.open(fastgwa_path, "rt") as fh, open(ss, "w") as out:
        fh.readline()
        out.write("SNP\tA1\tA2\tZ\tN\n")  # LDSC: no frequencies, no positions
        for line in fh:
            c, snp, pos, a1, a2, n, af, beta, se, _p = line.split()
            if snp in wanted:
                out.write(f"{snp}\t{a1}\t{a2}\t{float(beta) / float(se):.6g}\t{n}\n")
    ds = tmp_path / "ds"
    r = invoke(["ingest", "--sumstats", ss, "--ld", tmp_path / "ukbb", "-o", ds, "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["matched"] > 2500
    r = invoke(["precompute-ld", ds, "--json"])
    assert r.exit_code == 0, r.output
    r = invoke(["fit", ds, "-o", tmp_path / "model"])  # every option at its default
    assert r.exit_code == 0, r.output
    assert "--alpha auto" in r.stderr and "no allele frequency" in r.stderr
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    assert meta["prior"]["options"]["alpha"] == 0.0 and meta["alpha_source"] == "auto: no allele frequencies"
    assert any("--alpha auto" in n for n in meta["notes"])
    assert meta["optimizer"] == "lbfgs" and meta["stop_reason"] == "gradient below gtol"
    assert meta["holdout_chroms"] == []  # one chromosome: nothing to hold out
