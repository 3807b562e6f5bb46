"""Build conversion (varfx.io.liftover): known hg19 -> hg38 positions, the chain block
arithmetic recomputed independently, failure reasons, moving to neighbours, bad chain
files and build-mismatch detection on the real chr22 data."""

from __future__ import annotations

import bisect
import functools
import gzip
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA
from varfx.errors import UserError
from varfx.io.liftover import (
    Chain,
    chain_builds,
    detect_build_mismatch,
    lift_positions,
    lift_table,
    load_chain,
)
from varfx.io.plink import load_plink

FIXTURES = Path(__file__).parent / "fixtures"
EXCERPT = FIXTURES / "hg19ToHg38.chr19_chr22.over.chain.gz"  # chr19 + chr22 chains of the UCSC file
FULL_CHAIN = SHARED_DATA / "liftover" / "hg19ToHg38.over.chain.gz"
TINY = FIXTURES / "tiny.over.chain"


@pytest.fixture(scope="module")
def chain():
    """The full UCSC hg19 -> hg38 chain when the shared data is there, else the excerpt."""
    return load_chain(FULL_CHAIN if FULL_CHAIN.is_file() else EXCERPT)


@pytest.fixture(scope="module")
def tiny():
    return load_chain(TINY)


# ---------------------------------------------------------------------------------------
# An independent reading of the chain format (http://genome.ucsc.edu/goldenPath/help/chain.html):
# header "chain score tName tSize tStrand tStart tEnd qName qSize qStrand qStart qEnd id",
# then "size dt dq" lines and a last "size" line; 0-based half-open; a '-' query strand
# counts query coordinates on the reverse complement.


def read_blocks(path, source):
    """[(t_start, t_end, q_name, q_start_on_its_strand, q_strand, q_size)] for chains from ``source``."""
    blocks = []
    with gzip.open(path, "rt") as fh:
        t = q = hdr = None
        for line in fh:
            f = line.split()
            if not f:
                continue
            if f[0] == "chain":
                hdr = f if f[2] == source else None
                if hdr:
                    t, q = int(hdr[5]), int(hdr[10])
                continue
            if hdr is None:
                continue
            size = int(f[0])
            blocks.append((t, t + size, hdr[7], q, hdr[9], int(hdr[8])))
            t += size + (int(f[1]) if len(f) == 3 else 0)
            q += size + (int(f[2]) if len(f) == 3 else 0)
    blocks.sort()
    return blocks


@functools.lru_cache(maxsize=None)
def chain_index(path, source):
    """(blocks sorted by start, their starts, the longest block's length)."""
    blocks = read_blocks(path, source)
    return blocks, [b[0] for b in blocks], max(b[1] - b[0] for b in blocks)


def lift_by_hand(path, source, pos1):
    """All (q_name, 1-based q position on its + strand, strand) for a 1-based source position."""
    x = pos1 - 1
    blocks, starts, longest = chain_index(path, source)
    out = []
    for b in blocks[bisect.bisect_left(starts, x - longest) : bisect.bisect_right(starts, x)]:
        t0, t1, qname, q0, strand, qsize = b
        if t0 <= x < t1:
            y = q0 + (x - t0)
            if strand == "-":
                y = qsize - 1 - y
            out.append((qname, y + 1, strand))
    return out


# ---------------------------------------------------------------------------------------


def test_known_hg19_to_hg38_positions(chain):
    chrom = np.array([22, 19, 19, 22, 22, 22])
    pos = np.array([19951271, 45411941, 45412079, 16871137, 51219006, 16050047])
    new_chrom, new_pos, ok, rep = lift_positions(chain, chrom, pos)
    assert ok.all()
    assert new_chrom.tolist() == [22, 19, 19, 22, 22, 22]
    # rs4680 (COMT), rs429358 and rs7412 (APOE): dbSNP GRCh37 -> GRCh38 positions
    # rs131538 and rs28729663: first and last SNP of the 1000G chr22 panel
    # chr22:16050047: inside an inverted chain (hg19 chr22:16050036-16697850 -> hg38 '-')
    assert new_pos.tolist() == [19963748, 44908684, 44908822, 16390411, 50780578, 15927970]
    assert rep.minus_strand.tolist() == [False] * 5 + [True]
    assert rep.counts["lifted"] == 6 and rep.counts["minus_strand"] == 1


def test_failures_on_the_real_chain(chain):
    # 18047421: a chain to chr10; 24343280: a chain to chr22_KI270879v1_alt only;
    # 17943430 (rs5747183): in a gap of the chr22 chain; chrom 0 and pos 0: invalid;
    chrom = np.array([22, 22, 22, 0, 22, 22])
    pos = np.array([18047421, 24343280, 17943430, 100, 0, 19951271])
    new_chrom, new_pos, ok, rep = lift_positions(chain, chrom, pos)
    assert rep.reason.tolist() == ["other_chrom", "other_chrom", "unmapped", "invalid", "invalid", ""]
    assert ok.tolist() == [False] * 5 + [True]
    assert (new_pos[~ok] == -1).all() and (new_chrom[~ok] == -1).all()
    assert rep.counts["dropped"] == {"invalid": 2, "unknown_chrom": 0, "unmapped": 1, "multiple": 0, "other_chrom": 2}
    c = rep.counts
    assert c["read"] == c["lifted"] + c["moved"] + sum(c["dropped"].values())
    # what those variants do map to, by hand
    assert lift_by_hand(EXCERPT, "chr22", 18047421) == [("chr10", 90331456, "+")]
    assert lift_by_hand(EXCERPT, "chr22", 24343280) == [("chr22_KI270879v1_alt", 237455, "+")]
    assert lift_by_hand(EXCERPT, "chr22", 17943430) == []


def test_every_panel_snp_matches_the_chain_arithmetic(chain, panel_prefix):
    bim = load_plink(panel_prefix).bim
    new_chrom, new_pos, ok, rep = lift_positions(chain, bim["chrom"], bim["bp"])
    expected = [lift_by_hand(EXCERPT, "chr22", int(b)) for b in bim["bp"]]
    exp_ok = np.array([len(e) == 1 and e[0][0] == "chr22" for e in expected])
    assert np.array_equal(ok, exp_ok)
    assert new_pos[ok].tolist() == [e[0][1] for e, k in zip(expected, exp_ok) if k]
    assert rep.counts["lifted"] == 15907
    assert rep.counts["dropped"]["unmapped"] == 31
    assert (new_chrom[ok] == 22).all()


def test_chromosome_names_with_or_without_chr(chain, tiny):
    pos = [19951271, 19951271, 19951271, 19951271]
    _, p1, ok1, _ = lift_positions(chain, np.array(["22", "chr22", "CHR22", "Chr22"]), pos)
    assert ok1.all() and (p1 == 19963748).all()
    # the tiny chain names its chromosome "1" (no prefix)
    _, p2, ok2, _ = lift_positions(tiny, np.array(["chr1", "1", "chr2"]), [120, 120, 120])
    assert p2.tolist() == [1020, 1020, -1] and ok2.tolist() == [True, True, False]
    c, p3, ok3, rep = lift_positions(tiny, np.array([1, 2]), [120, 120])
    assert rep.reason.tolist() == ["", "unknown_chrom"]


def test_tiny_chain_reasons_and_strand(tiny):
    # block [100,150) -> [1000,1050), gap, [160,300) -> [1070,1210); [170,180) also -> chr2;
    # [400,500) -> chr1 minus strand (q [100,200) reversed, size 2000); [600,650) -> 5;
    # [700,720) -> an alt contig.  0-based above; positions below are 1-based.
    pos = np.array([100, 101, 150, 151, 161, 171, 180, 181, 300, 301, 401, 500, 620, 710])
    c, p, ok, rep = lift_positions(tiny, np.ones(len(pos), dtype=int), pos)
    assert rep.reason.tolist() == [
        "unmapped", "", "", "unmapped", "", "multiple", "multiple", "", "", "unmapped",
        "", "", "other_chrom", "other_chrom",
    ]
    exp = {101: 1001, 150: 1050, 161: 1071, 181: 1091, 300: 1210, 401: 2000 - 100, 500: 2000 - 199}
    assert {int(a): int(b) for a, b, k in zip(pos, p, ok) if k} == exp
    assert rep.minus_strand[ok].tolist() == [False] * 5 + [True, True]


def test_move_to_neighbour(tiny):
    pos = np.array([120, 155, 175, 250, 405, 620, 710, 0])
    c, p, ok, rep = lift_positions(tiny, np.ones(8, dtype=int), pos, move_to_neighbour=True)
    # lifted: 120 -> 1020, 250 -> 1160, 405 -> 1896 (minus strand)
    # 155 (gap): nearest is 120 -> 1020 + 35; 175 (multiple): 120 (55 away) -> 1075;
    # 620 and 710 (other chromosome / alt contig): nearest is 405, minus strand ->
    # 1896 - 215 and 1896 - 305; pos 0 stays invalid.
    assert p.tolist() == [1020, 1055, 1075, 1160, 1896, 1681, 1591, -1]
    assert ok.tolist() == [True] * 7 + [False]
    assert rep.moved.tolist() == [False, True, True, False, False, True, True, False]
    assert rep.reason.tolist()[1:3] == ["unmapped", "multiple"]  # the reason is kept
    c = rep.counts
    assert (c["lifted"], c["moved"]) == (3, 4)
    assert c["failed"]["other_chrom"] == 2 and c["dropped"]["other_chrom"] == 0
    assert c["read"] == c["lifted"] + c["moved"] + sum(c["dropped"].values())


def test_move_to_neighbour_tie_takes_the_upstream_one(tiny):
    # 155 is 35 from 120 and 35 from 190 (-> 1100): the upstream one wins
    _, p, ok, rep = lift_positions(tiny, [1, 1, 1], [120, 155, 190], move_to_neighbour=True)
    assert p.tolist() == [1020, 1055, 1100]


def test_load_chain_reads_builds_and_names(chain):
    assert isinstance(chain, Chain)
    assert (chain.source_build, chain.target_build) == ("hg19", "hg38")
    assert chain.names[22] == "chr22"
    assert chain_builds("hg38ToHg19.over.chain.gz") == ("hg38", "hg19")
    assert chain_builds("GRCh37_to_GRCh38.chain.gz") == (None, None)


def test_full_chain_x_chromosome(chain):
    if 23 not in chain.names:
        pytest.skip("the full hg19 -> hg38 chain (shared data) is not available")
    ch = chain
    assert ch.names[23] == "chrX" and ch.names[26] == "chrM"
    c, p, ok, _ = lift_positions(ch, np.array([23, 25, "X"]), [31137345, 2699520, 31137345])
    assert ok.all() and c.tolist() == [23, 25, 23]  # XY stays XY
    assert p.tolist() == [31119228, 2781479, 31119228]


# ---------------------------------------------------------------------------------------
# bad chain files


def _raises_naming(path, *words):
    with pytest.raises(UserError) as exc:
        load_chain(path)
    msg = str(exc.value)
    assert str(path) in msg and "\n" not in msg
    for w in words:
        assert w in msg, msg
    return msg


def test_bad_chain_files(tmp_path):
    text = tmp_path / "not_a_chain.txt"
    text.write_text("\n# comment\n22 16050075 A G\n")
    msg = _raises_naming(text, "line 3", "expected a line starting with 'chain'")

    trunc = tmp_path / "hg19ToHg38.over.chain.gz"
    trunc.write_bytes(EXCERPT.read_bytes()[:3000])
    _raises_naming(trunc, "corrupt or truncated gzip")

    empty = tmp_path / "empty.chain"
    empty.write_text("\n\n")
    _raises_naming(empty, "empty chain file")

    _raises_naming(tmp_path / "missing.chain", "no such file")

    header = tmp_path / "bad_header.chain"
    header.write_text("chain 1000 chr1 1000 + x 300\n")
    _raises_naming(header, "line 1", "malformed chain header")

    blocks = tmp_path / "bad_blocks.chain"  # the blocks do not add up to the header's end
    blocks.write_text("chain 1000 chr1 1000 + 100 300 chr1 2000 + 1000 1210 1\n50\t10\t20\n100\n")
    _raises_naming(blocks, "line 3", "header says 300/1210")

    cut = tmp_path / "cut.chain"  # a plain-text chain file cut in the middle of a chain
    cut.write_text("".join(TINY.read_text().splitlines(keepends=True)[:3]))
    _raises_naming(cut, "has no last 'size' line")

    junk = tmp_path / "junk.chain"
    junk.write_text("chain 1000 chr1 1000 + 100 300 chr1 2000 + 1000 1210 1\n50 x 20\n140\n")
    _raises_naming(junk, "line 2", "malformed alignment line")

    sizes = tmp_path / "sizes.chain"  # well-formed chains that disagree on chr1's size
    sizes.write_text(
        "chain 1 chr1 1000 + 0 10 chr1 1000 + 0 10 1\n10\n\nchain 1 chr1 999 + 20 30 chr1 1000 + 20 30 2\n10\n"
    )
    _raises_naming(sizes, "malformed chain file", "inconsistent")

    gz_text = tmp_path / "gz_text.chain.gz"  # valid gzip, wrong content
    gz_text.write_bytes(gzip.compress(b"##fileformat=VCFv4.2\n22\t16050075\trs1\tA\tG\n"))
    _raises_naming(gz_text, "expected a line starting with 'chain'")
    assert "not a chain file" in msg


# ---------------------------------------------------------------------------------------
# build mismatch


def test_detect_build_mismatch_on_real_data(chain, panel_prefix):
    ref = load_plink(panel_prefix).bim
    c, p, ok, _ = lift_positions(chain, ref["chrom"], ref["bp"])
    hg38 = {"snp": ref["snp"][ok], "chrom": c[ok], "bp": p[ok]}
    msg = detect_build_mismatch(hg38, ref)
    assert msg is not None
    assert msg.startswith("the sumstats look like a different genome build than the LD reference")
    assert "100.0% of rsids do" in msg and msg.endswith("use --liftover CHAIN")
    pct = float(msg.split("only ")[1].split("%")[0])
    assert pct < 5.0
    # the same build: nothing to say
    assert detect_build_mismatch({k: ref[k] for k in ("snp", "chrom", "bp")}, ref) is None
    # no shared ids (e.g. chrom:pos ids): cannot tell
    ids = np.array([f"22:{b}" for b in hg38["bp"]])
    assert detect_build_mismatch({**hg38, "snp": ids}, ref) is None
    # no positions in the sumstats: cannot tell
    assert detect_build_mismatch({**hg38, "chrom": np.full(len(ids), -1)}, ref) is None
    # a few shared ids only: below min_shared
    few = {k: v[:10] for k, v in hg38.items()}
    assert detect_build_mismatch(few, ref) is None
    assert detect_build_mismatch(few, ref, min_shared=5) is not None


def test_lift_table_then_harmonise(chain, panel_prefix, fastgwa_path):
    """Lifting both the real sumstats and the panel to hg38 keeps every match whose SNP
    lifts: what the lead's ingest does with --liftover (here on both sides)."""
    from varfx.io.harmonise import harmonise
    from varfx.io.sumstats import read_sumstats

    ss = read_sumstats(fastgwa_path)
    panel = load_plink(panel_prefix)
    base = harmonise(ss, panel.bim)
    ss38, kept, rep = lift_table(chain, ss)
    assert type(ss38) is type(ss) and ss38.format == ss.format
    assert len(ss38["z"]) == len(kept) == rep.counts["lifted"] == 15935 - 31
    assert np.array_equal(ss38["snp"], ss["snp"][kept]) and np.array_equal(ss38["z"], ss["z"][kept])
    assert len(ss["bp"]) == 15935  # the input is not modified
    bim38, kept_ref, _ = lift_table(chain, panel.bim)
    h = harmonise(ss38, bim38)
    matched_before = set(ss["snp"][base.ss_index].tolist())
    lifted = set(ss38["snp"].tolist())
    assert set(ss38["snp"][h.ss_index].tolist()) == matched_before & lifted
    assert h.counts["dropped"]["not_in_ld"] == 0 and h.counts["dropped"]["duplicate"] == 0
