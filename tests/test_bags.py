"""``varfx bags``: clumping against a brute-force reference, --blocks matching, the
negative pool, --add-study and the bag store.

The reference clumping here is written from the definition (PLINK's greedy clumping)
on r^2 from :func:`conftest.corr_of_dosages` of the panel's own dosages (decoded
independently of varfx.io), with p from ``scipy.stats.norm.logsf``; the stage uses
``log_ndtr`` and one row of R from the dataset's stored genotypes.
"""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import norm

from varfx.cli import cli
from varfx.stages.bags import two_sided_log_p
from varfx.store.bags import Bag, BagSet, load_bags, write_bags
from varfx.store.dataset import open_dataset, stored_fingerprint

from _data import PANEL, SUMSTATS, write_subset
from conftest import corr_of_dosages, decode_bed_reference, read_bim_rows


def invoke(args):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exit_code == 0, (r.output, r.stderr)
    return r


def run_bags(ds, *args):
    r = invoke(["bags", ds, *args])
    return json.loads(r.stdout), r.stderr


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The whole chr22 demo data set (UKB height, 1000G EUR panel; 332 significant variants)."""
    ds = tmp_path_factory.mktemp("bags") / "ds"
    invoke(["ingest", "--sumstats", SUMSTATS, "--ld", PANEL, "-o", ds, "--json"])
    return ds


@pytest.fixture(scope="module")
def panel():
    return {"bim": read_bim_rows(PANEL), "dos": decode_bed_reference(PANEL)}


def dataset_arrays(ds):
    with open_dataset(ds) as h5:
        v = h5["variants"]
        return {"snp": v["snp"].asstr()[:], "chrom": v["chrom"][:], "bp": v["bp"][:], "a1": v["a1"].asstr()[:],
                "a2": v["a2"].asstr()[:], "z": v["z"][:], "freq": v["freq"][:]}


def reference_r2(d, panel, idx, region=None):
    """r^2 among dataset variants ``idx`` from the panel's dosages (allele orientation
    does not change r^2); 0 across UKBB regions when ``region`` labels are given."""
    row = {r[1]: i for i, r in enumerate(panel["bim"])}
    R = corr_of_dosages(panel["dos"][[row[s] for s in d["snp"][idx]]])
    if region is not None:
        R = R * (region[:, None] == region[None, :])
    return R * R


def reference_clump(d, panel, p_threshold, kb, r2, region_of=None):
    """Greedy clumping from its definition: (blocks as lists of dataset indices, lead
    first then most significant first; the variants that had no LD with some lead
    because they lie in another UKBB region)."""
    logp = np.log(2) + norm.logsf(np.abs(d["z"]))
    sig = [i for i in range(len(logp)) if logp[i] < np.log(p_threshold)]
    sig.sort(key=lambda i: (logp[i], i))
    pos = {s: k for k, s in enumerate(sig)}
    region = None if region_of is None else np.array([region_of(d["bp"][i]) for i in sig])
    R2 = reference_r2(d, panel, np.array(sig), region)
    done, blocks, outside = set(), [], set()
    for lead in sig:
        if lead in done:
            continue
        block = [lead]
        for j in sig:
            if j == lead or j in done or d["chrom"][j] != d["chrom"][lead]:
                continue
            if abs(int(d["bp"][j]) - int(d["bp"][lead])) > kb * 1000:
                continue
            if region is not None and region[pos[j]] != region[pos[lead]]:
                outside.add(j)
                continue
            if R2[pos[lead], pos[j]] >= r2:
                block.append(j)
        done.update(block)
        blocks.append(block)
    return blocks, outside


def test_log_p_is_finite_and_ordered_beyond_double_underflow():
    z = np.array([0.0, 1.0, -3.0, 6.0, 38.0, 40.0, -50.0, 200.0])
    lp = two_sided_log_p(z)
    assert np.all(np.isfinite(lp))
    ref = np.log(2) + norm.logsf(np.abs(z))
    np.testing.assert_allclose(lp, ref, rtol=1e-10, atol=1e-12)
    assert np.all(np.diff(lp[4:6]) < 0) and lp[6] > lp[7]  # |z| 50 < 200: no p = 0 tie


@pytest.mark.parametrize("kb,r2", [(500, 0.1), (100, 0.5), (1000, 0.0)])
def test_clumping_matches_brute_force(demo, panel, kb, r2):
    summary, _ = run_bags(demo, "--clump-kb", kb, "--clump-r2", r2, "--min-bag-size", 1, "--max-bag-size", 100000)
    d = dataset_arrays(demo)
    ref, _ = reference_clump(d, panel, 5e-8, kb, r2)
    got = load_bags(demo)
    assert [list(b.variants) for b in got.positives] == ref
    assert summary["bags"] == len(ref) and summary["members"] == sum(map(len, ref)) == 332
    for b in got.positives:
        assert b.name == d["snp"][b.variants[0]]
        assert (b.start, b.end) == (d["bp"][b.variants].min(), d["bp"][b.variants].max())
        assert b.chrom == 22 and b.study == "ds" and b.signal == ""
    if r2 == 0.0:  # every significant variant within 1 Mb of a lead joins it
        assert all(np.ptp(d["bp"][b.variants]) <= 2_000_000 for b in got.positives)


def test_size_limits_and_their_counts(demo, panel):
    summary, _ = run_bags(demo, "--min-bag-size", 12, "--max-bag-size", 20)
    d = dataset_arrays(demo)
    ref, _ = reference_clump(d, panel, 5e-8, 500, 0.1)
    keep = [b[:20] for b in ref if len(b) >= 12]
    got = load_bags(demo)
    assert [list(b.variants) for b in got.positives] == keep
    drop = summary["dropped"]
    assert drop["below_min_size"] == sum(len(b) < 12 for b in ref)
    assert drop["truncated_to_max_size"] == sum(len(b) > 20 for b in ref) > 0
    assert drop["members_truncated"] == sum(len(b) - 20 for b in ref if len(b) > 20)
    sizes = [len(b) for b in keep]
    q = summary["bag_size"]
    assert (q["min"], q["max"]) == (min(sizes), max(sizes)) and q["min"] >= 12 and q["max"] == 20
    assert q["median"] == pytest.approx(np.median(sizes))
    assert got.summary == summary  # the summary is stored in bags.h5 as printed


def test_negatives_follow_every_rule(demo):
    summary, _ = run_bags(demo, "--neg-maf-min", 0.1, "--neg-p-min", 0.2, "--neg-exclude-kb", 50)
    d = dataset_arrays(demo)
    got = load_bags(demo)
    p = 2 * norm.sf(np.abs(d["z"]))
    sig_bp = d["bp"][p < 5e-8]
    maf = np.minimum(d["freq"], 1 - d["freq"])
    far = np.abs(d["bp"][:, None] - sig_bp[None, :]).min(axis=1) >= 50_000
    expected = np.flatnonzero((maf >= 0.1) & (p > 0.2) & far)
    np.testing.assert_array_equal(got.negatives, expected)
    assert np.all(got.negative_chrom == 22)
    assert summary["negatives"] == len(expected) > 1000
    # the positives are clumped as by default
    assert summary["bags"] == 10


def test_negatives_without_frequencies_skip_the_maf_filter_with_a_note(demo, tmp_path):
    ds = tmp_path / "nofreq"
    ds.mkdir()
    shutil.copy(demo / "dataset.h5", ds / "dataset.h5")
    with h5py.File(ds / "dataset.h5", "r+") as h5:  # as a UKBB LD reference with LDSC sumstats
        h5["variants/freq"][...] = np.nan
    summary, stderr = run_bags(ds)
    assert "no allele frequencies" in stderr and "--neg-maf-min" in stderr
    assert summary["studies"]["nofreq"]["negative_filters"]["maf_filter"].startswith("skipped")
    d = dataset_arrays(demo)
    p = 2 * norm.sf(np.abs(d["z"]))
    far = np.abs(d["bp"][:, None] - d["bp"][p < 5e-8][None, :]).min(axis=1) >= 10_000
    np.testing.assert_array_equal(load_bags(ds).negatives, np.flatnonzero((p > 0.1) & far))


# ---------------------------------------------------------------------------------------
# --blocks


def write_blocks(path, rows, header="chr\tbp\trsid\tea\tnea\tp\tblock_id\tsignal"):
    path.write_text(header + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


def test_blocks_match_by_position_either_orientation_chr_prefix_then_rsid(demo, tmp_path):
    d = dataset_arrays(demo)
    rng = np.random.default_rng(3)
    a = np.arange(5000, 5014)  # block A: 14 variants
    b = np.arange(9000, 9011)  # block B: 11 variants, signal "secondary"
    rows, p_of = [], {}
    for k, i in enumerate(np.concatenate([a, b])):
        p = float(rng.uniform(1e-12, 1e-3))
        p_of[i] = p
        ea, nea = (d["a2"][i], d["a1"][i]) if k % 2 else (d["a1"][i], d["a2"][i])  # both orientations
        chrom = "chr22" if k % 3 else "22"
        bp = int(d["bp"][i])
        rsid = d["snp"][i]
        if k == 4:
            bp += 1  # a position off by one (another build?): matched by its rsid
        if k == 5:
            rsid = "rs_not_there"  # matched by position and alleles alone
        rows.append((chrom, bp, rsid, ea, nea, p, "A" if i in a else "B", "primary" if i in a else "secondary"))
    rows.insert(3, ("22", 1, "rs_unknown", "A", "C", 1e-9, "A", "primary"))
    blocks = write_blocks(tmp_path / "blocks.tsv", rows[::-1])
    summary, _ = run_bags(demo, "--blocks", blocks, "--drop-unknown", "--max-bag-size", 12)
    assert summary["mode"] == "blocks"
    assert summary["dropped"]["unknown_rows"] == 1
    st = summary["studies"]["ds"]
    assert st["matched_by_rsid"] == 1 and st["matched_by_position"] == len(a) + len(b) - 1
    got = {x.name: x for x in load_bags(demo).positives}
    assert set(got) == {"A", "B"}
    want_a = sorted(a, key=lambda i: p_of[i])[:12]  # by the file's p, truncated to 12
    np.testing.assert_array_equal(got["A"].variants, want_a)
    np.testing.assert_array_equal(got["B"].variants, sorted(b, key=lambda i: p_of[i]))
    assert (got["A"].signal, got["B"].signal) == ("primary", "secondary")
    assert (got["A"].start, got["A"].end) == (d["bp"][want_a].min(), d["bp"][want_a].max())
    assert summary["dropped"]["truncated_to_max_size"] == 1
    # negatives keep away from the blocks' variants (none is significant at 5e-8 here)
    neg_bp = d["bp"][load_bags(demo).negatives]
    for i in np.concatenate([a, b]):
        assert np.abs(neg_bp - d["bp"][i]).min() >= 10_000


def test_blocks_gzipped_without_signal_column_and_small_block_dropped(demo, tmp_path):
    d = dataset_arrays(demo)
    rows = [(22, d["bp"][i], d["snp"][i], d["a1"][i], d["a2"][i], 0.0, "big") for i in range(100, 112)]
    rows += [(22, d["bp"][i], d["snp"][i], d["a1"][i], d["a2"][i], 1e-9, "small") for i in range(300, 305)]
    # gzipped, upper-case names in another order, a '#' before the header
    import gzip

    blocks = tmp_path / "b.tsv.gz"
    with gzip.open(blocks, "wt") as fh:
        fh.write("#BLOCK_ID\tCHR\tBP\tRSID\tEA\tNEA\tP\n")
        fh.writelines("\t".join(map(str, (r[6],) + r[:6])) + "\n" for r in rows)
    summary, _ = run_bags(demo, "--blocks", blocks)
    got = load_bags(demo).positives
    assert [b.name for b in got] == ["big"] and summary["dropped"]["below_min_size"] == 1
    # p = 0 ties (an upstream underflow) are broken by the dataset's |z|
    order = sorted(range(100, 112), key=lambda i: (-abs(d["z"][i]), i))
    np.testing.assert_array_equal(got[0].variants, order)


# ---------------------------------------------------------------------------------------
# --add-study


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A slice of the panel (43-46 Mb, two hit regions) ingested as its own dataset."""
    tmp = tmp_path_factory.mktemp("small")
    prefix, ss = write_subset(tmp / "in", 11247, 1848)
    ds = tmp / "ds"
    invoke(["ingest", "--sumstats", ss, "--ld", prefix, "-o", ds, "--json"])
    return ds


def test_add_study_maps_bags_and_negatives_by_position_and_alleles(demo, small, tmp_path):
    other = tmp_path / "other" / "ds"  # the same directory name as the main one: made unique
    other.mkdir(parents=True)
    shutil.copy(demo / "dataset.h5", other / "dataset.h5")
    run_bags(other)
    own = load_bags(other)
    main = tmp_path / "main" / "ds"
    main.mkdir(parents=True)
    shutil.copy(small / "dataset.h5", main / "dataset.h5")
    run_bags(main)
    alone = load_bags(main)
    summary, _ = run_bags(main, "--add-study", other)
    got = load_bags(main)
    assert got.studies == ["ds", "ds-2"]
    dm, do = dataset_arrays(main), dataset_arrays(other)
    key = {(dm["bp"][i], frozenset((dm["a1"][i], dm["a2"][i]))): i for i in range(len(dm["bp"]))}

    def mapped(i):
        return key.get((do["bp"][i], frozenset((do["a1"][i], do["a2"][i]))), -1)

    first = [b for b in got.positives if b.study == "ds"]
    second = [b for b in got.positives if b.study == "ds-2"]
    assert [list(b.variants) for b in first] == [list(b.variants) for b in alone.positives]
    expect, lost, below = [], 0, 0
    for b in own.positives:
        m = [mapped(i) for i in b.variants]
        lost += sum(x < 0 for x in m)
        m = [x for x in m if x >= 0]
        if len(m) < 10:
            below += 1
        else:
            expect.append((b.name, m))
    assert [(b.name, list(b.variants)) for b in second] == expect
    assert len(expect) >= 2 and below >= 1 and lost > 0  # the slice lacks most of chr22
    un = summary["dropped"]["unmatched_across_studies"]
    assert (un["members"], un["bags_below_min_size"]) == (lost, below)
    assert summary["studies"]["ds-2"]["bags"] == len(expect)
    assert summary["studies"]["ds"]["bags"] == len(first)
    assert summary["bags"] == len(first) + len(second)
    # negatives: the union of both studies' pools on this dataset, minus any near a hit
    mapped_neg = {mapped(i) for i in own.negatives} - {-1}
    union = set(alone.negatives) | mapped_neg
    assert set(got.negatives) <= union
    assert set(got.negatives) == set(alone.negatives) | mapped_neg  # same trait: same hits
    for b in got.positives:
        assert b.start == dm["bp"][b.variants].min() and b.end == dm["bp"][b.variants].max()


# ---------------------------------------------------------------------------------------
# UKBB region LD: no correlation across regions


def test_ukbb_regions_clump_within_the_leads_region_and_count_the_rest(tmp_path, write_region, panel):
    first, count = 12850, 200  # the 45.7-45.85 Mb hits, cut into two regions
    _, ss = write_subset(tmp_path / "in", first, count)
    regions = tmp_path / "regions"
    write_region(regions, range(first, first + 100))
    write_region(regions, range(first + 100, first + count))
    cut = int(panel["bim"][first + 100][3])
    ds = tmp_path / "ds"
    invoke(["ingest", "--sumstats", ss, "--ld", regions, "-o", ds, "--json"])
    summary, stderr = run_bags(ds, "--min-bag-size", 1)
    d = dataset_arrays(ds)
    ref, outside = reference_clump(d, panel, 5e-8, 500, 0.1, region_of=lambda bp: int(bp >= cut))
    assert [list(b.variants) for b in load_bags(ds).positives] == ref
    assert summary["dropped"]["outside_ld_region"] == len(outside) > 0
    assert "outside the LD region" in stderr


# ---------------------------------------------------------------------------------------
# the store


def test_store_round_trip_select_and_link(demo, tmp_path):
    ds = tmp_path / "ds"
    ds.mkdir()
    shutil.copy(demo / "dataset.h5", ds / "dataset.h5")
    with open_dataset(ds) as h5:
        fp = stored_fingerprint(h5)
    bags = [Bag(index=0, name="b0", chrom=22, start=10, end=20, variants=np.array([5, 3, 9]), study="s1", signal="primary"),
            Bag(index=1, name="b1", chrom=21, start=1, end=2, variants=np.array([7]), study="s2")]
    bs = BagSet(positives=bags, negatives=np.array([1, 2, 4]), negative_chrom=np.array([22, 21, 22]),
                studies=["s1", "s2"], params={"x": 1}, summary={"bags": 2})
    write_bags(ds, bs, fp)
    got = load_bags(ds)
    assert [(b.name, b.chrom, b.start, b.end, list(b.variants), b.study, b.signal) for b in got.positives] == \
        [("b0", 22, 10, 20, [5, 3, 9], "s1", "primary"), ("b1", 21, 1, 2, [7], "s2", "")]
    np.testing.assert_array_equal(got.negatives, [1, 2, 4])
    assert got.params == {"x": 1} and got.summary == {"bags": 2} and got.studies == ["s1", "s2"]
    sel = got.select(exclude=[21])
    assert [b.name for b in sel.positives] == ["b0"] and list(sel.negatives) == [1, 4]
    # re-running the stage replaces the store
    run_bags(ds)
    assert load_bags(ds).summary["bags"] == 10
    assert sorted(p.name for p in ds.iterdir()) == ["bags.h5", "dataset.h5"]


def test_add_study_negatives_keep_away_from_every_studys_hits(demo, tmp_path):
    """A hit of the other study where this one has none removes this study's negatives
    near it (the pool is for a model of causality in any trait)."""
    d = dataset_arrays(demo)
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(demo / "dataset.h5", other / "dataset.h5")
    new_hit = np.arange(200, 212)  # ~17 Mb: no hit in the height data
    assert np.all(np.abs(d["z"][new_hit]) < 3)
    with h5py.File(other / "dataset.h5", "r+") as h5:
        z = h5["variants/z"][:]
        z[new_hit] = 9.0
        h5["variants/z"][...] = z
    main = tmp_path / "main"
    main.mkdir()
    shutil.copy(demo / "dataset.h5", main / "dataset.h5")
    run_bags(main)
    alone = load_bags(main)
    run_bags(other, "--min-bag-size", 1)
    own = load_bags(other)  # same variants as main: indices map to themselves
    summary, _ = run_bags(main, "--add-study", other, "--min-bag-size", 1)
    got = load_bags(main)
    hits = np.concatenate([np.flatnonzero(2 * norm.sf(np.abs(d["z"])) < 5e-8), new_hit])
    union = np.union1d(alone.negatives, own.negatives)
    near = np.abs(d["bp"][union][:, None] - d["bp"][hits][None, :]).min(axis=1) < 10_000
    np.testing.assert_array_equal(got.negatives, union[~near])
    assert summary["dropped"]["negatives_near_another_studys_hit"] == int(near.sum()) > 0
    assert summary["studies"]["other"]["significant"] == summary["studies"]["main"]["significant"] + len(new_hit)
    assert summary["dropped"]["unmatched_across_studies"]["members"] == 0
