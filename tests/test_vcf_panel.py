"""VCF/BCF LD reference panels (varfx.io.vcf_panel): a bgzipped, indexed VCF written from
200 SNPs x 378 people of the real PLINK panel must give the PLINK dosages back (in the
a1 = ALT orientation), harmonise consistently, and honour regions and MAF filters."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pysam = pytest.importorskip("pysam")

from conftest import corr_of_dosages  # noqa: E402
from varfx.errors import UserError  # noqa: E402
from varfx.io.harmonise import harmonise  # noqa: E402
from varfx.io.plink import load_plink  # noqa: E402
from varfx.io.vcf_panel import load_vcf_panel, parse_region  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
SMALL = FIXTURES / "small_panel.vcf"
STEP, N_SNPS = 79, 200


def _gt(alt_dosage: int, k: int) -> str:
    if alt_dosage < 0:
        return "./." if k % 2 else ".|."
    if alt_dosage == 1:
        return ("0|1", "1|0", "0/1", "1/0")[k % 4]
    return f"{alt_dosage // 2}{'|' if k % 2 else '/'}{alt_dosage // 2}"


@pytest.fixture(scope="module")
def vcf_case(tmp_path_factory, panel_prefix, panel_dosages, panel_bim):
    """A VCF of panel rows 0, 79, 158, ... (200 SNPs): every third one written the other
    way round (REF = PLINK A1), some genotypes set missing, plus a multi-allelic site
    and an indel that must be skipped.  Returns a dict with the paths and expectations."""
    d = tmp_path_factory.mktemp("vcf")
    rows = np.arange(N_SNPS) * STEP
    swap = np.arange(N_SNPS) % 3 == 2
    g = panel_dosages[rows].copy()
    rng = np.random.default_rng(7)
    missing = rng.random(g.shape) < 0.01
    g[missing] = -1  # the PLINK dosages the VCF should give back (A1 orientation)
    n = g.shape[1]
    lines = [
        "##fileformat=VCFv4.2",
        "##contig=<ID=22,length=51304566>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#" + "\t".join(["CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT"]
                        + [f"P{i}" for i in range(n)]),
    ]
    for k, (r, sw) in enumerate(zip(rows, swap)):
        c, snp, _cm, bp, a1, a2 = panel_bim[r]
        ref, alt = (a1, a2) if sw else (a2, a1)
        alt_d = np.where(g[k] < 0, -1, 2 - g[k]) if sw else g[k]
        gts = [_gt(int(x), k + i) for i, x in enumerate(alt_d)]
        lines.append("\t".join([c, bp, snp, ref, alt, ".", "PASS", ".", "GT"] + gts))
        if k == 50:  # extra records at the same position, to be skipped
            lines.append("\t".join([c, bp, "multi", "A", "C,G", ".", "PASS", ".", "GT"] + ["0/1"] * n))
            lines.append("\t".join([c, bp, "indel", "A", "AT", ".", "PASS", ".", "GT"] + ["0/1"] * n))
    plain = d / "panel.vcf"
    plain.write_text("\n".join(lines) + "\n")
    gz = d / "panel.vcf.gz"
    pysam.tabix_compress(str(plain), str(gz), force=True)
    pysam.tabix_index(str(gz), preset="vcf", force=True)
    bim = load_plink(panel_prefix).bim
    return {"dir": d, "plain": plain, "gz": gz, "rows": rows, "swap": swap, "g": g,
            "bim": {k: v[rows] for k, v in bim.items()}}


def test_round_trip_gives_the_plink_dosages(vcf_case):
    case = vcf_case
    panel = load_vcf_panel(case["gz"])
    bim, swap = case["bim"], case["swap"]
    assert panel.n_people == 378 and panel.n_snps == N_SNPS
    assert panel.counts == {"records": N_SNPS + 2, "snps": N_SNPS,
                            "skipped": {"multiallelic": 1, "no_alt": 0, "not_snp": 1, "unknown_chrom": 0, "maf": 0}}
    assert panel.bim["snp"].tolist() == bim["snp"].tolist()
    assert panel.bim["bp"].tolist() == bim["bp"].tolist()
    assert (panel.bim["chrom"] == 22).all()
    # a1 = ALT: the PLINK A1 except where the VCF was written the other way round
    assert np.array_equal(panel.bim["a1"], np.where(swap, bim["a2"], bim["a1"]))
    assert np.array_equal(panel.bim["a2"], np.where(swap, bim["a1"], bim["a2"]))
    g = case["g"]
    expected = np.where(swap[:, None] & (g >= 0), 2 - g, g)
    got = panel.genotypes()
    assert got.dtype == np.int8 and np.array_equal(got, expected)
    assert np.array_equal(panel.genotypes([5, 2]), expected[[5, 2]])
    # the plain (not bgzipped) VCF reads the same
    assert np.array_equal(load_vcf_panel(case["plain"]).genotypes(), expected)
    freq, mono = panel.summary_stats()
    ok = g >= 0
    f_a1 = np.where(ok, g, 0).sum(1) / (2.0 * ok.sum(1))
    assert np.allclose(freq, np.where(swap, 1 - f_a1, f_a1)) and not mono.any()


def test_orientation_is_consistent_with_harmonisation(vcf_case):
    """Harmonising the same sumstats against the PLINK rows and the VCF panel gives Z of
    opposite sign exactly where the VCF lists the alleles the other way round, and R
    changes sign the same way: Z and R always refer to the same allele."""
    case = vcf_case
    plink_ref = {**case["bim"], "chrom": case["bim"]["chrom"].astype(np.int64)}
    vcf = load_vcf_panel(case["gz"])
    rng = np.random.default_rng(1)
    m = N_SNPS
    # sumstats: the PLINK alleles, half of them swapped, with random Z for their A1
    sw = rng.random(m) < 0.5
    ss = {
        "snp": plink_ref["snp"], "chrom": plink_ref["chrom"], "bp": plink_ref["bp"],
        "a1": np.where(sw, plink_ref["a2"], plink_ref["a1"]),
        "a2": np.where(sw, plink_ref["a1"], plink_ref["a2"]),
    }
    z = rng.normal(size=m)
    hp = harmonise(ss, plink_ref)
    hv = harmonise(ss, vcf.bim)
    assert hp.counts["matched"] == hv.counts["matched"] > 0
    assert np.array_equal(hp.ss_index, hv.ss_index) and np.array_equal(hp.ref_index, hv.ref_index)
    zp = np.where(hp.flip, -z[hp.ss_index], z[hp.ss_index])
    zv = np.where(hv.flip, -z[hv.ss_index], z[hv.ss_index])
    s = np.where(case["swap"][hp.ref_index], -1.0, 1.0)
    assert np.allclose(zv, s * zp)
    # R among the matched variants, from each panel's a1 dosages
    g = case["g"][hp.ref_index]
    rp = corr_of_dosages(g)
    rv = corr_of_dosages(vcf.genotypes(hv.ref_index))
    assert np.allclose(rv, rp * s[:, None] * s[None, :], atol=1e-12)


def test_region_needs_an_index_and_reads_a_slice(vcf_case, tmp_path):
    case = vcf_case
    bp = case["bim"]["bp"]
    lo, hi = int(bp[20]), int(bp[59])
    for region in (f"22:{lo}-{hi}", f"chr22:{lo:,}-{hi:,}"):
        panel = load_vcf_panel(case["gz"], region=region)
        assert panel.bim["bp"].tolist() == bp[20:60].tolist()
        assert panel.index_path == Path(str(case["gz"]) + ".tbi")
        assert ("ld_vcf_index", panel.index_path) in panel.inputs
    assert load_vcf_panel(case["gz"], region="22").n_snps == N_SNPS
    assert load_vcf_panel(case["gz"], region=f"22:{int(bp[-1])}-").n_snps == 1
    bare = tmp_path / "noindex.vcf.gz"
    shutil.copy(case["gz"], bare)
    with pytest.raises(UserError, match=r"noindex\.vcf\.gz: reading region '22:1-100000000' needs an index"):
        load_vcf_panel(bare, region="22:1-100000000")
    assert load_vcf_panel(bare).n_snps == N_SNPS  # no region, no index needed
    with pytest.raises(UserError, match="neither '5' nor 'chr5'"):
        load_vcf_panel(case["gz"], region="5:1-1000")
    with pytest.raises(UserError, match=r"no biallelic SNP in region 22:1-10 \(0 records read"):
        load_vcf_panel(case["gz"], region="22:1-10")


def test_parse_region():
    assert parse_region("chr22:1,000-2,000") == ("chr22", 1000, 2000)
    assert parse_region("X") == ("X", None, None)
    assert parse_region("22:500") == ("22", 500, 500)
    assert parse_region("22:500-") == ("22", 500, None)
    for bad in ("22:0-5", "22:9-5", "22 5"):
        with pytest.raises(UserError, match="bad region"):
            parse_region(bad)


def test_maf_min(vcf_case):
    case = vcf_case
    g = case["g"]
    ok = g >= 0
    f = np.where(ok, g, 0).sum(1) / (2.0 * ok.sum(1))
    maf = np.minimum(f, 1 - f)
    panel = load_vcf_panel(case["gz"], maf_min=0.1)
    assert panel.n_snps == int((maf >= 0.1).sum()) < N_SNPS
    assert panel.counts["skipped"]["maf"] == int((maf < 0.1).sum())
    assert panel.bim["snp"].tolist() == case["bim"]["snp"][maf >= 0.1].tolist()
    assert panel.genotypes().shape == (panel.n_snps, 378)
    with pytest.raises(UserError, match="--ld-maf-min must be between 0 and 0.5"):
        load_vcf_panel(case["gz"], maf_min=0.7)


def test_bcf_with_csi_index(vcf_case, tmp_path):
    bcf = tmp_path / "panel.bcf"
    with pysam.VariantFile(str(vcf_case["gz"])) as vin, pysam.VariantFile(str(bcf), "wb", header=vin.header) as out:
        for rec in vin:
            out.write(rec)
    pysam.tabix_index(str(bcf), preset="bcf", csi=True, force=True)
    whole = load_vcf_panel(bcf)
    assert np.array_equal(whole.genotypes(), load_vcf_panel(vcf_case["gz"]).genotypes())
    bp = vcf_case["bim"]["bp"]
    part = load_vcf_panel(bcf, region=f"22:{int(bp[10])}-{int(bp[12])}")
    assert part.n_snps == 3 and part.index_path.suffix == ".csi"


# ---------------------------------------------------------------------------------------
# the hand-written fixture: GT details, DS, skipped records


def test_small_fixture_gt_and_ds():
    p = load_vcf_panel(SMALL)
    assert p.bim["snp"].tolist() == ["rs1", "22:200:C:T", "rs6", "rs7"]
    assert p.bim["a1"].tolist() == ["G", "T", "C", "A"] and p.bim["a2"].tolist() == ["A", "C", "T", "G"]
    assert p.samples.tolist() == ["S1", "S2", "S3", "S4"]
    # rs6: haploid 1 -> 2, haploid 0 -> 0, "0/." -> missing
    assert p.genotypes().tolist() == [[0, 1, 2, -1], [1, 1, 0, 2], [2, 0, -1, 1], [0, 0, 0, 1]]
    assert p.counts["skipped"] == {"multiallelic": 1, "no_alt": 1, "not_snp": 1, "unknown_chrom": 1, "maf": 0}
    ds = load_vcf_panel(SMALL, field="DS")
    # DS 0.1 0.9 1.8 . ; 1.2 0.4 0 2 ; 2 0 . 1 ; 0 0 0 1 -> rounded
    assert ds.genotypes().tolist() == [[0, 1, 2, -1], [1, 0, 0, 2], [2, 0, -1, 1], [0, 0, 0, 1]]
    assert p.inputs == [("ld_vcf", SMALL)]


def _write(path, body, samples=("S1", "S2")):
    head = ["##fileformat=VCFv4.2", "##contig=<ID=22>",
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
            '##FORMAT=<ID=DS,Number=A,Type=Float,Description="Dosage">',
            "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]
                      + (["FORMAT", *samples] if samples else []))]
    path.write_text("\n".join(head + body) + "\n")
    return path


def test_bad_vcf_inputs(tmp_path, vcf_case):
    def fails(path, *words, **kw):
        with pytest.raises(UserError) as exc:
            load_vcf_panel(path, **kw)
        msg = str(exc.value)
        assert msg.startswith(str(path)) and "\n" not in msg, msg
        for w in words:
            assert w in msg, msg

    fails(tmp_path / "missing.vcf.gz", "no such file")
    fails(FIXTURES / "tiny.over.chain", "not a VCF/BCF file")
    fails(_write(tmp_path / "nosamples.vcf", ["22\t100\trs1\tA\tG\t.\t.\t."], samples=()), "no samples")
    fails(_write(tmp_path / "badgt.vcf", ["22\t100\trs1\tA\tG\t.\t.\t.\tGT\t0/1\t0/2"]),
          "record 22:100", "allele the record does not have")
    fails(_write(tmp_path / "triploid.vcf", ["22\t100\trs1\tA\tG\t.\t.\t.\tGT\t0/1/1\t0/0"]), "not haploid or diploid")
    fails(_write(tmp_path / "nogt.vcf", ["22\t100\trs1\tA\tG\t.\t.\t.\tDS\t1\t0"]), "no GT field", "field='DS'")
    fails(_write(tmp_path / "badds.vcf", ["22\t100\trs1\tA\tG\t.\t.\t.\tDS\t1\t3.5"]), "outside [0, 2]", field="DS")
    fails(_write(tmp_path / "indels.vcf", ["22\t100\trs1\tA\tGT\t.\t.\t.\tGT\t0/1\t0/0"]),
          "no biallelic SNP", "not_snp 1")
    fails(_write(tmp_path / "short.vcf", ["22\t100\trs1\tA\tG\t.\t.\t.\tGT\t0/1\t0/0",
                                         "22\t200\trs2\tA\tG\t.\t.\t.\tGT\t0/1"]),
          "record 2 cannot be read")
    # a bgzipped panel cut in the middle
    data = vcf_case["gz"].read_bytes()
    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(data[: len(data) // 2])
    fails(cut, "truncated")
    with pytest.raises(UserError, match="unknown genotype field 'GP'"):
        load_vcf_panel(SMALL, field="GP")


def test_ingest_with_a_vcf_panel_matches_plink(vcf_case, tmp_path, panel_prefix):
    """`varfx ingest --ld panel.vcf.gz`: the same variants and Z (up to the allele
    orientation of each panel) as ingesting the PLINK panel, and precompute-ld runs."""
    import json

    import h5py
    from click.testing import CliRunner

    from _data import SUMSTATS
    from varfx.cli import cli

    def run(args):
        r = CliRunner().invoke(cli, [str(a) for a in args])
        assert r.exit_code == 0, r.output
        return r

    s_vcf = json.loads(run(["ingest", "--sumstats", SUMSTATS, "--ld", vcf_case["gz"], "-o", tmp_path / "v", "--json"]).output)
    assert s_vcf["ld_kind"] == "vcf" and s_vcf["matched"] > 150
    run(["ingest", "--sumstats", SUMSTATS, "--ld", panel_prefix, "-o", tmp_path / "p", "--json"])
    with h5py.File(tmp_path / "v" / "dataset.h5", "r") as v, h5py.File(tmp_path / "p" / "dataset.h5", "r") as p:
        pv = {s: (a, z) for s, a, z in zip(p["variants"]["snp"].asstr()[:], p["variants"]["a1"].asstr()[:], p["variants"]["z"][:])}
        n = 0
        for s, a, z in zip(v["variants"]["snp"].asstr()[:], v["variants"]["a1"].asstr()[:], v["variants"]["z"][:]):
            pa, pz = pv[s]
            assert z == pytest.approx(pz if a == pa else -pz)
            n += 1
        assert n == s_vcf["matched"]
    run(["precompute-ld", tmp_path / "v", "--window-kb", 2000, "--flank-kb", 0, "--json"])


def test_ingest_ld_filters(tmp_path, panel_prefix):
    """--ld-maf-min and --exclude-lrld drop panel variants, with counts."""
    import json

    from click.testing import CliRunner

    from _data import SUMSTATS
    from varfx.cli import cli

    def summary(*extra):
        r = CliRunner().invoke(cli, ["ingest", "--sumstats", str(SUMSTATS), "--ld", str(panel_prefix), "--json",
                                     "-o", str(tmp_path / f"d{len(extra)}{abs(hash(extra))}"), *map(str, extra)])
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)

    base = summary()
    maf = summary("--ld-maf-min", 0.2)
    assert maf["dropped"]["low_maf_in_ld"] > 1000
    assert maf["matched"] == base["matched"] - maf["dropped"]["low_maf_in_ld"]
    lrld = tmp_path / "lrld.txt"
    lrld.write_text("chr22 20000000 25000000 test\n")
    ex = summary("--exclude-lrld", lrld)
    assert ex["dropped"]["long_range_ld"] > 100
    assert ex["matched"] == base["matched"] - ex["dropped"]["long_range_ld"]


def test_simulate_from_a_vcf_panel(vcf_case, tmp_path):
    """simulate samples from a VCF panel (missing genotypes, skipped records, REF/ALT in
    either orientation) and its summary statistics ingest back onto every variant."""
    import json

    from click.testing import CliRunner

    from varfx.cli import cli

    gz = vcf_case["gz"]
    sim, ds = tmp_path / "sim", tmp_path / "ds"
    r = CliRunner().invoke(cli, ["simulate", "--ld", str(gz), "--truth", "constant", "--h2", "0.1",
                                 "-o", str(sim), "--json"])
    assert r.exit_code == 0, r.output
    meta = json.loads(r.stdout)
    assert meta["ld_kind"] == "vcf" and 0 < meta["n_variants"] <= len(vcf_case["rows"])
    r = CliRunner().invoke(cli, ["ingest", "--sumstats", str(sim / "sumstats.fastGWA.gz"), "--ld", str(gz),
                                 "-o", str(ds), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["matched"] == meta["n_variants"]
    # a region of the indexed VCF: only its variants are simulated
    lo, hi = int(vcf_case["bim"]["bp"][0]), int(vcf_case["bim"]["bp"][60])
    r = CliRunner().invoke(cli, ["simulate", "--ld", str(gz), "--ld-region", f"22:{lo}-{hi}", "--truth", "constant",
                                 "-o", str(tmp_path / "sim2"), "--json"])
    assert r.exit_code == 0, r.output
    assert 0 < json.loads(r.stdout)["n_variants"] <= 61
