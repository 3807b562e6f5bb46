"""The seqcnn prior (varfx/nn/seqcnn.py): conformance, its invariances, a planted motif
learnt from labels, and the DNA inputs (store/variants.py) from a dataset's FASTA."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from varfx.testing.priors import PriorConformance

torch.set_num_threads(1)


class TestSeqCNNPrior(PriorConformance):
    prior_name = "seqcnn"
    prior_options = {"window": 128, "max_shift": 4}


class TestSeqCNNPriorAlleleAwareNoToken(PriorConformance):
    prior_name = "seqcnn"
    prior_options = {"window": 64, "tower": 2, "crop": 2, "max_shift": 0, "allele_aware": True,
                     "variant_token": False, "rc": False}


def build(**options):
    from varfx.plugins import lookup

    prior = lookup("priors", "seqcnn")(**options)
    return prior, prior.module({"init_f": 1.0})


def perturbed(module, seed=0, scale=0.3):
    """The module with random weights in the last layer (which starts at zero) and
    around the others, so that outputs differ between inputs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
    return module


def random_codes(n, L, seed=0, p_n=0.0):
    rng = np.random.default_rng(seed)
    p = [(1 - p_n) / 4] * 4 + [p_n]
    return torch.tensor(rng.choice(5, size=(n, L), p=p), dtype=torch.uint8)


def revcomp(codes):
    comp = torch.tensor([3, 2, 1, 0, 4], dtype=torch.uint8)
    return comp[codes.long()].flip(1)


def test_default_parameter_count_is_mifms():
    # DESIGN.md: MIFM's network has ~24.7k parameters; the default is the same shape
    _, m = build()
    n = sum(p.numel() for p in m.parameters())
    assert abs(n - 24_700) / 24_700 < 0.10, n
    from varfx.nn.seqcnn import tower_channels

    assert tower_channels(16, 4) == [16, 19, 22, 26, 31]


def test_sequence_length_is_odd_and_centred():
    prior, m = build(window=128, max_shift=8)
    assert prior.sequence_length() == 128 + 16 + 1 == m.sequence_length
    # the centre of an odd length is the reverse complement's fixed point
    L = prior.sequence_length()
    assert L - 1 - L // 2 == L // 2


def test_output_starts_at_log_init_f():
    _, m = build(window=64, tower=2, crop=2)
    from varfx.plugins import lookup

    m2 = lookup("priors", "seqcnn")(window=64, tower=2, crop=2).module({"init_f": 3e-6})
    batch = {"sequence": random_codes(20, m.sequence_length), "freq": torch.full((20,), 0.2, dtype=torch.float64)}
    with torch.no_grad():
        assert torch.equal(m.eval()(batch), torch.zeros(20, dtype=torch.float64))
        assert torch.allclose(m2.eval()(batch), torch.full((20,), np.log(3e-6), dtype=torch.float64))


def test_eval_is_centred_and_training_shifts():
    # in eval the shift margin is unused: the output is the centred window's, the same as
    # a model without shifts (the weights do not depend on max_shift) on the centre bases
    _, a = build(window=128, max_shift=8, rc=False, dropout=0.0)
    _, b = build(window=128, max_shift=0, rc=False, dropout=0.0)
    perturbed(a)
    b.load_state_dict(a.state_dict())
    codes = random_codes(50, a.sequence_length, seed=1)
    with torch.no_grad():
        ya = a.eval()({"sequence": codes})
        yb = b.eval()({"sequence": codes[:, 8:-8]})
        assert torch.allclose(ya, yb, atol=1e-6)
        assert torch.equal(ya, a({"sequence": codes}))  # deterministic in eval
        # training (BatchNorm frozen, no dropout): the shift changes the output
        a.train()
        for mod in a.modules():
            if isinstance(mod, torch.nn.BatchNorm1d):
                mod.eval()
        y1, y2 = a({"sequence": codes}), a({"sequence": codes})
    assert not torch.allclose(y1, y2)


def test_reverse_complement_scores_the_same_in_eval():
    _, m = build(window=128, max_shift=4, allele_aware=True)
    perturbed(m, seed=2)
    codes = random_codes(64, m.sequence_length, seed=3, p_n=0.05)
    alt = torch.tensor(np.random.default_rng(4).integers(0, 5, 64), dtype=torch.uint8)
    comp = torch.tensor([3, 2, 1, 0, 4], dtype=torch.uint8)
    m.eval()
    with torch.no_grad():
        fwd = m({"sequence": codes, "alt": alt})
        rev = m({"sequence": revcomp(codes), "alt": comp[alt.long()]})
        assert torch.allclose(fwd, rev, atol=1e-6)
        # without rc averaging the two strands differ (the test above can fail)
        m.rc = False
        assert not torch.allclose(m({"sequence": codes, "alt": alt}),
                                  m({"sequence": revcomp(codes), "alt": comp[alt.long()]}), atol=1e-3)


def test_allele_aware_changes_the_score_only_through_the_centre_base():
    _, aware = build(window=128, max_shift=4, allele_aware=True)
    _, plain = build(window=128, max_shift=4, allele_aware=False)
    perturbed(aware, seed=5)
    plain.load_state_dict(aware.state_dict())
    aware.eval()
    plain.eval()
    codes = random_codes(40, aware.sequence_length, seed=6)
    c = aware.sequence_length // 2
    rng = np.random.default_rng(7)
    alt = torch.tensor((codes[:, c].numpy() + rng.integers(1, 4, 40)) % 4, dtype=torch.uint8)
    alt[:5] = 4  # unknown: the reference base stays
    with_alt = codes.clone()
    with_alt[5:, c] = alt[5:]
    with torch.no_grad():
        assert torch.allclose(aware({"sequence": codes, "alt": alt}), plain({"sequence": with_alt}), atol=1e-6)
        ref_score = plain({"sequence": codes})
        assert torch.allclose(aware({"sequence": codes, "alt": alt})[:5], ref_score[:5], atol=1e-6)
        assert not torch.allclose(aware({"sequence": codes, "alt": alt})[5:], ref_score[5:], atol=1e-4)
        # the reference-only model ignores alt
        assert torch.equal(plain({"sequence": codes, "alt": alt}), ref_score)


def test_n_is_all_zero():
    from varfx.nn.seqcnn import one_hot

    codes = torch.tensor([[0, 1, 2, 3, 4, 4]], dtype=torch.uint8)
    x = one_hot(codes)
    assert x.shape == (1, 4, 6)
    assert torch.equal(x[0, :, :4], torch.eye(4))
    assert torch.equal(x[0, :, 4:], torch.zeros(4, 2))
    # through the model's encoder: only the variant token is set in an all-N window
    _, m = build(window=64, tower=2, crop=2, max_shift=2)
    enc = m.encode(*m.prepare({"sequence": torch.full((3, m.sequence_length), 4, dtype=torch.uint8)},
                              augment=False))
    assert torch.equal(enc[:, :4], torch.zeros(3, 4, 64))
    assert torch.equal(enc[:, 4].sum(1), torch.ones(3)) and torch.equal(enc[:, 4, 32], torch.ones(3))


def test_training_randomness_is_in_the_state_dict():
    # a module rebuilt from a state dict draws the same shifts, strands and dropout
    _, a = build(window=128, max_shift=8)
    perturbed(a, seed=8)
    a.train()
    codes = random_codes(30, a.sequence_length, seed=9)
    a({"sequence": codes})  # one draw: the count moves
    _, b = build(window=128, max_shift=8)
    b.load_state_dict(a.state_dict())
    b.train()
    assert torch.equal(a({"sequence": codes}), b({"sequence": codes}))


def test_bad_options_are_one_line_errors():
    from varfx.errors import UserError
    from varfx.plugins import lookup

    cls = lookup("priors", "seqcnn")
    for opts in ({"window": 63}, {"crop": 40}, {"dropout": 1.5}, {"width": 0}, {"max_shift": -1}):
        with pytest.raises(UserError, match="seqcnn"):
            p = cls(**opts)
            p.sequence_length()
            p.module({"init_f": 1.0})
    with pytest.raises(UserError, match="rc"):
        cls.parse_options(["rc=maybe"])


def auroc(score, y):
    from scipy.stats import rankdata

    r = rankdata(score)
    n1, n0 = y.sum(), len(y) - y.sum()
    return (r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)


def planted(n, L, motif, rng):
    """n random sequences; the first half carry ``motif`` 3-39 bases from the centre."""
    codes = rng.integers(0, 4, (n, L)).astype(np.uint8)
    y = np.zeros(n, dtype=np.float32)
    y[: n // 2] = 1
    c = L // 2
    for i in range(n // 2):
        d = int(rng.integers(3, 40)) * int(rng.choice([-1, 1]))
        s = c + d if d > 0 else c + d - len(motif)
        codes[i, s:s + len(motif)] = motif
    return torch.tensor(codes), torch.tensor(y)


def _planted_motif_auroc(seed, epochs):
    """Held-out AUROC of the default seqcnn network trained at the prior's default rate
    with instance-level BCE on 400 sequences, half with a 10-bp motif 3-39 bases from the
    variant (benchmarks/seqcnn_lr.py's task)."""
    from varfx.plugins import lookup

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    cls = lookup("priors", "seqcnn")
    prior = cls()
    m = prior.module({"init_f": 1.0})
    L = prior.sequence_length()
    motif = rng.integers(0, 4, 10).astype(np.uint8)
    x, y = planted(400, L, motif, rng)
    xt, yt = planted(200, L, motif, rng)
    opt = torch.optim.AdamW(m.parameters(), lr=cls.default_lr, weight_decay=0.0)
    for _ in range(epochs):
        m.train()
        perm = torch.randperm(400)
        for b in range(0, 400, 64):
            i = perm[b:b + 64]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(m({"sequence": x[i]}).float(), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
    m.eval()
    with torch.no_grad():
        score = m({"sequence": xt}).numpy()
    return auroc(score, yt.numpy())


@pytest.mark.slow
def test_planted_motif_is_learnt_from_labels():
    # The learning curve is a plateau at chance, then a jump to ~1; when a seed escapes
    # depends on the float rounding of the host's kernels (seed 0 reached 0.999 after 5
    # epochs on one host and was still at 0.62 after 15 on another: docs/seqcnn.md), so
    # one seed is a coin, not a test.  Six seeds, 16 epochs: on the two hosts measured 4
    # and 5 of 6 escaped; with a per-seed chance of 0.7, two or more of six escape with
    # probability 0.99, while a network or rate that learns nothing stays near 0.5 in all.
    aurocs = [_planted_motif_auroc(seed, 16) for seed in range(6)]
    assert sum(a > 0.95 for a in aurocs) >= 2, aurocs
    assert max(aurocs) > 0.99, aurocs


# ------------------------------------------------------------------ DNA inputs from a dataset

import json  # noqa: E402
import shutil  # noqa: E402

import h5py  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from varfx.cli import cli  # noqa: E402

from _data import write_subset  # noqa: E402
from _train import interrupted_after_checkpoint  # noqa: E402


def invoke(args, **kw):
    return CliRunner().invoke(cli, [str(a) for a in args], **kw)


def one_error(r, *needles):
    """Exit 1, exactly one 'Error:' line naming what was wrong, no traceback."""
    assert r.exit_code == 1, r.output
    lines = [x for x in r.output.splitlines() if x.startswith("Error: ")]
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def write_genome(path, bim_rows, *, rng, wrong=0.0, contig="chr22"):
    """A random chr22 (N before the first variant's neighbourhood) whose base at each
    variant is one of its alleles (a1 for 80%), except a fraction ``wrong`` given a
    third base.  Returns the sequence as a str (position p is ``seq[p - 1]``)."""
    from varfx.testing.features import write_fasta

    bp = np.array([int(r[3]) for r in bim_rows])
    lo, hi = int(bp.min()) - 3000, int(bp.max()) + 3000
    bases = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, hi)].copy()
    bases[:lo] = ord("N")
    for r, b in zip(bim_rows, bp):
        a1, a2 = r[4], r[5]
        base = a1 if rng.random() < 0.8 else a2
        if rng.random() < wrong:
            base = next(x for x in "ACGT" if x not in (a1, a2))
        bases[b - 1] = ord(base)
    seq = bases.tobytes().decode()
    write_fasta(path, {contig: seq}, width=80)
    return seq


@pytest.fixture(scope="module")
def seqdata(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("seqcnn")
    prefix, ss = write_subset(tmp / "in", 3000, 300)
    bim = [line.split() for line in open(f"{prefix}.bim")]
    seq = write_genome(tmp / "ref.fa", bim, rng=np.random.default_rng(0))
    ds = tmp / "ds"
    r = invoke(["ingest", "--sumstats", ss, "--ld", prefix, "--fasta", tmp / "ref.fa", "--feature-window", 32,
                "-o", ds, "--json"])
    assert r.exit_code == 0, r.output
    r = invoke(["precompute-ld", ds, "--window-kb", 100, "--flank-kb", 50, "--json"])
    assert r.exit_code == 0, r.output
    plain = tmp / "plain"  # the same data ingested without a FASTA
    r = invoke(["ingest", "--sumstats", ss, "--ld", prefix, "-o", plain, "--json"])
    assert r.exit_code == 0, r.output
    r = invoke(["precompute-ld", plain, "--window-kb", 100, "--flank-kb", 50, "--json"])
    assert r.exit_code == 0, r.output
    return {"tmp": tmp, "ds": ds, "plain": plain, "seq": seq, "prefix": prefix}


def test_ingest_records_the_fasta(seqdata):
    import hashlib

    from varfx.store.variants import FASTA_HASH_LIMIT, fasta_checksum, recorded_fasta

    fa = seqdata["tmp"] / "ref.fa"
    with h5py.File(seqdata["ds"] / "dataset.h5", "r") as h5:
        rec = recorded_fasta(h5)
    assert rec["path"] == str(fa.resolve()) and rec["bytes"] == fa.stat().st_size
    data = fa.read_bytes()
    assert len(data) > FASTA_HASH_LIMIT  # the two-span checksum: first and last 8 MiB
    half = FASTA_HASH_LIMIT // 2
    assert rec["sha256"] == hashlib.sha256(data[:half] + data[-half:]).hexdigest()
    small = seqdata["tmp"] / "small.bin"
    small.write_bytes(b"ACGT" * 100)
    assert fasta_checksum(small) == hashlib.sha256(b"ACGT" * 100).hexdigest()
    with h5py.File(seqdata["plain"] / "dataset.h5", "r") as h5:
        assert recorded_fasta(h5) is None


def test_sequence_and_alt_read_from_the_recorded_fasta(seqdata):
    # against the FASTA's text: window of 33 bases, the variant at offset 16
    from varfx.store.variants import variant_batch

    seq = seqdata["seq"]
    notes = []
    with h5py.File(seqdata["ds"] / "dataset.h5", "r") as h5:
        batch = variant_batch(h5, sequence_length=33, notes=notes)
        bp = h5["variants"]["bp"][:]
        a1 = h5["variants"]["a1"].asstr()[:]
        a2 = h5["variants"]["a2"].asstr()[:]
    code = {"A": 0, "C": 1, "G": 2, "T": 3}
    want = np.array([[code.get(seq[p - 1 + d], 4) for d in range(-16, 17)] for p in bp], dtype=np.uint8)
    assert np.array_equal(batch["sequence"].numpy(), want)
    ref = np.array([seq[p - 1] for p in bp])
    want_alt = np.array([code[b] if r == a else code[a] for r, a, b in zip(ref, a1, a2)])
    assert np.all((ref == a1) | (ref == a2))
    assert np.array_equal(batch["alt"].numpy(), want_alt)
    assert notes == []


def test_wrong_build_fasta_is_a_note(seqdata, tmp_path):
    from varfx.store.variants import sequence_inputs

    bim = [line.split() for line in open(f"{seqdata['prefix']}.bim")]
    write_genome(tmp_path / "wrong.fa", bim, rng=np.random.default_rng(1), wrong=0.5, contig="22")
    notes = []
    with h5py.File(seqdata["ds"] / "dataset.h5", "r") as h5:
        _, alt = sequence_inputs(h5, tmp_path / "wrong.fa", 9, notes=notes)
    assert len(notes) == 1 and "neither allele" in notes[0]
    frac = float((alt == 4).mean())
    assert 0.35 < frac < 0.65  # the wrong half: alt unknown


FIT = ["--prior", "seqcnn", "--objective", "full", "-p", "window=64", "-p", "tower=2", "-p", "crop=2",
       "-p", "init=1e-3", "--sigma2", 1, "--holdout-chroms", "none", "--seed", 4]


@pytest.mark.slow
def test_fit_full_trains_resumes_and_scores(seqdata):
    """seqcnn on the exact likelihood: the loss falls from a too-large start, a fit
    stopped after a checkpoint and resumed equals one never stopped, score writes F."""
    from varfx.stages.fit import run_fit

    tmp, ds = seqdata["tmp"], seqdata["ds"]
    full = tmp / "m-full"
    r = invoke(["fit", ds, *FIT, "--epochs", 6, "-o", full])
    assert r.exit_code == 0, r.output
    meta = json.loads((full / "model.json").read_text())
    curve = [c["train_loss"] for c in meta["curve"]]
    assert curve[-1] < curve[0] and meta["fasta"]["path"] == str((tmp / "ref.fa").resolve())
    assert 0.9 * 24_700 > meta["n_parameters"] > 1000  # the small options given

    part = tmp / "m-part"
    interrupted_after_checkpoint(3, lambda: run_fit(
        ds, part, prior="seqcnn", objective="full", prior_options=("window=64", "tower=2", "crop=2", "init=1e-3"),
        sigma2=1.0, holdout_chroms="none", epochs=6, seed=4, progress=False))
    r = invoke(["fit", ds, *FIT, "--epochs", 6, "-o", part])
    assert r.exit_code == 0, r.output
    again = [c["train_loss"] for c in json.loads((part / "model.json").read_text())["curve"]]
    assert again == pytest.approx(curve, rel=1e-9)

    out = tmp / "f.tsv"
    r = invoke(["score", full, ds, "-o", out])
    assert r.exit_code == 0, r.output
    lines = out.read_text().splitlines()
    assert lines[0].split("\t") == ["SNP", "CHR", "BP", "F"]
    f = np.array([float(x.split("\t")[3]) for x in lines[1:]])
    with h5py.File(ds / "dataset.h5", "r") as h5:
        assert len(f) == h5["variants"]["bp"].shape[0]
    assert np.all(np.isfinite(f) & (f > 0)) and f.std() > 0  # per-variant values from DNA

    # the same F from the in-process model (an independent path: load_model + forward)
    from varfx.store.model import load_model
    from varfx.store.variants import variant_batch

    _, module = load_model(full)
    with h5py.File(ds / "dataset.h5", "r") as h5:
        batch = variant_batch(h5, sequence_length=module.sequence_length)
    with torch.no_grad():
        np.testing.assert_allclose(np.exp(module(batch).numpy()), f, rtol=2e-6)

    # evaluate reads the dataset's FASTA too
    r = invoke(["evaluate", full, ds, "--chroms", "all", "--json"])
    assert r.exit_code == 0, r.output
    ev = json.loads(r.stdout)
    assert np.isfinite(ev["loglik"]) and ev["h2"] == pytest.approx(f.sum(), rel=1e-4)

    # a logit-output objective (mil, distil): P_CAUSAL = sigmoid(LOGIT)
    from varfx.plugins import lookup

    cls = lookup("objectives", "full")
    out2 = tmp / "p.tsv"
    cls.prior_output = "logit"
    try:
        r = invoke(["score", full, ds, "-o", out2])
    finally:
        del cls.prior_output
    assert r.exit_code == 0, r.output
    rows = [x.split("\t") for x in out2.read_text().splitlines()]
    assert rows[0] == ["SNP", "CHR", "BP", "P_CAUSAL", "LOGIT"]
    logit = np.array([float(x[4]) for x in rows[1:]])
    p = np.array([float(x[3]) for x in rows[1:]])
    np.testing.assert_allclose(logit, np.log(f), rtol=1e-5)
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-logit)), rtol=1e-5)


def test_fasta_errors_and_notes(seqdata, tmp_path):
    tmp, ds, plain = seqdata["tmp"], seqdata["ds"], seqdata["plain"]
    args = [*FIT, "--epochs", 1]
    # no FASTA recorded, none given
    one_error(invoke(["fit", plain, *args, "-o", tmp_path / "a"]), "records no FASTA", "--fasta")
    assert not (tmp_path / "a").exists()
    # --fasta for a prior that reads none
    one_error(invoke(["fit", plain, "--prior", "constant", "--fasta", tmp / "ref.fa", "-o", tmp_path / "b"]),
              "--fasta", "reads no DNA")
    one_error(invoke(["fit", plain, *args, "--fasta", tmp_path / "nope.fa", "-o", tmp_path / "c"]),
              "nope.fa", "no such FASTA")
    # the recorded FASTA moved: an error saying to pass --fasta, then --fasta works
    moved = tmp_path / "moved"
    shutil.copytree(ds, moved)
    src = tmp_path / "src"
    src.mkdir()
    for suffix in ("", ".fai"):
        shutil.copy(tmp / f"ref.fa{suffix}", src / f"ref.fa{suffix}")
    with h5py.File(moved / "dataset.h5", "r+") as h5:
        h5.attrs["fasta_path"] = str(src / "ref.fa")
    model = tmp_path / "m"
    r = invoke(["fit", moved, *args, "-o", model])
    assert r.exit_code == 0, r.output
    assert "differs" not in r.output
    (src / "ref.fa").rename(src / "gone.fa")
    (src / "ref.fa.fai").rename(src / "gone.fa.fai")
    one_error(invoke(["fit", moved, *args, "-o", tmp_path / "d"]), "missing", "--fasta")
    one_error(invoke(["score", model, moved, "-o", tmp_path / "s.tsv"]), "missing", "--fasta")
    assert not (tmp_path / "s.tsv").exists()
    r = invoke(["score", model, moved, "--fasta", src / "gone.fa", "-o", tmp_path / "s.tsv"])
    assert r.exit_code == 0 and "differs" not in r.output, r.output
    # another FASTA than the recorded one (a different checksum): a note, not an error
    bim = [line.split() for line in open(f"{seqdata['prefix']}.bim")]
    write_genome(tmp_path / "other.fa", bim, rng=np.random.default_rng(5))
    r = invoke(["score", model, moved, "--fasta", tmp_path / "other.fa", "-o", tmp_path / "s2.tsv"])
    assert r.exit_code == 0, r.output
    assert r.output.count("Note: FASTA") == 2  # differs from the dataset's and from the model's
    one_error(invoke(["score", model, moved, "--fasta", tmp_path / "nope.fa", "-o", tmp_path / "s3.tsv"]),
              "no such FASTA")


def test_fit_ldsr_with_seqcnn(seqdata, tmp_path):
    # LD score regression with f from sequence: trains (the loss falls from a too-large start)
    r = invoke(["fit", seqdata["ds"], *FIT[:3], "ldsr", *FIT[4:], "--epochs", 4, "-o", tmp_path / "m"])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    curve = [c["train_loss"] for c in meta["curve"]]
    assert meta["objective"]["name"] == "ldsr" and curve[-1] < curve[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    # eval: the same outputs on the GPU (float32 convolutions: 1e-4); training draws its
    # shifts, strands and dropout from a CUDA generator and reproduces from the state dict
    _, m = build(window=128, max_shift=4, allele_aware=True)
    perturbed(m, seed=11)
    codes = random_codes(64, m.sequence_length, seed=12, p_n=0.05)
    alt = torch.tensor(np.random.default_rng(13).integers(0, 5, 64), dtype=torch.uint8)
    batch = {"sequence": codes, "alt": alt, "freq": torch.full((64,), 0.3, dtype=torch.float64)}
    gpu = {k: v.cuda() for k, v in batch.items()}
    with torch.no_grad():
        cpu_out = m.eval()(batch)
        m.cuda()
        np.testing.assert_allclose(m(gpu).cpu().numpy(), cpu_out.numpy(), rtol=1e-4, atol=1e-4)
    m.train()
    state = {k: v.clone() for k, v in m.state_dict().items()}
    y1 = m(gpu)
    y1.sum().backward()
    m.load_state_dict(state)
    assert torch.allclose(m(gpu), y1, rtol=1e-5, atol=1e-6) and torch.isfinite(y1).all()


def test_checkpointed_chunks_give_the_gradients_of_plain_chunks(monkeypatch):
    # a step of more variants than `chunk` is checkpointed chunk by chunk; the recomputed
    # forward must draw the same dropout masks, else the gradients would be another
    # function's.  Compared with the same chunks run without checkpointing.
    import varfx.nn.seqcnn as mod

    def grads(use_checkpoint):
        torch.manual_seed(0)
        _, m = build(window=64, tower=2, crop=2, max_shift=4, dropout=0.3, chunk=16)
        perturbed(m, seed=14)
        m.train()
        if not use_checkpoint:
            monkeypatch.setattr(mod, "checkpoint", lambda fn, *a, **kw: fn(*a))
        codes = random_codes(50, m.sequence_length, seed=15)
        y = m({"sequence": codes})
        (y * torch.linspace(-1, 1, 50, dtype=y.dtype)).sum().backward()
        monkeypatch.undo()
        return y.detach(), {n: p.grad.clone() for n, p in m.named_parameters()}

    y1, g1 = grads(True)
    y2, g2 = grads(False)
    assert torch.equal(y1, y2)
    for n in g1:
        assert torch.allclose(g1[n], g2[n], rtol=1e-5, atol=1e-7), n


def _random_eval_state(module, seed):
    """Random weights everywhere (the last layer included) and random BatchNorm running
    statistics, so that every term of the eval forward matters."""
    perturbed(module, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for mod in module.modules():
            if isinstance(mod, torch.nn.BatchNorm1d):
                mod.running_mean.copy_(torch.rand(mod.running_mean.shape, generator=gen) - 0.5)
                mod.running_var.copy_(0.5 + 1.5 * torch.rand(mod.running_var.shape, generator=gen))
    return module.eval()


@pytest.mark.parametrize("options", [
    {},  # the default network (window 512, both strands, the variant token)
    {"window": 100, "tower": 3, "crop": 3, "max_shift": 3, "rc": False},  # pooled lengths 50, 25 (odd), 13, 7
    {"window": 62, "tower": 2, "crop": 2, "max_shift": 0, "variant_token": False, "allele_aware": True},
    {"window": 38, "width": 5, "tower": 2, "dilated": 3, "crop": 1, "max_shift": 5, "allele_aware": True},
])
def test_fast_eval_equals_the_reference_path(options):
    # scoring takes _eval_forward_fast (channels-last, the stem as table look-ups, both
    # strands in one batch); it must compute _eval_forward_reference's function.  In float64
    # the two agree to ~1e-15 relative (only the order of the sums differs): 1e-10 fails on
    # any wrong tap, strand, offset or channel order, whose errors are O(1) relative.  In
    # float32 the differences are round-off: ~20 layers of sums of <= 155 terms, 6e-8 each,
    # amplified by the random weights; 2e-5 of the output's scale bounds them
    _, m = build(**options)
    _random_eval_state(m, seed=21)
    n = 37
    codes = random_codes(n, m.sequence_length, seed=22, p_n=0.05)
    alt = torch.tensor(np.random.default_rng(23).integers(0, 5, n), dtype=torch.uint8)
    batch = {"sequence": codes, "alt": alt}
    with torch.no_grad():
        fast, ref = m._eval_forward_fast(batch), m._eval_forward_reference(batch)
        assert torch.isfinite(ref).all() and ref.std() > 0
        scale = float(ref.abs().max())
        assert float((fast - ref).abs().max()) <= 2e-5 * scale, (float((fast - ref).abs().max()), scale)
        # what forward() gives in eval without gradients is the fast path, also in pieces
        assert torch.allclose(m(batch).float(), fast + float(m.log_init), rtol=0, atol=1e-6 * scale)
        import varfx.nn.seqcnn as mod

        piece, mod.FAST_PIECE = mod.FAST_PIECE, 10
        try:
            pieces = m._eval_forward_fast(batch)
        finally:
            mod.FAST_PIECE = piece
        assert float((pieces - ref).abs().max()) <= 2e-5 * scale
        m.double()
        fast, ref = m._eval_forward_fast(batch), m._eval_forward_reference(batch)
        assert fast.dtype == torch.float64
        assert float((fast - ref).abs().max()) <= 1e-10 * float(ref.abs().max())


def test_fast_stem_is_the_one_hot_convolution():
    # the stem as look-ups of summed weight columns, against torch's conv1d of the one-hot
    # bases and the variant token written out directly (not through encode)
    _, m = build(window=64, tower=2, crop=2, max_shift=2)
    perturbed(m, seed=24)
    m.double()
    codes = random_codes(9, 64, seed=25, p_n=0.2).long()
    x = torch.zeros(9, 5, 64, dtype=torch.float64)
    for base in range(4):
        x[:, base] = (codes == base).double()
    x[:, 4, 32] = 1.0  # the variant token at window // 2
    want = torch.nn.functional.conv1d(x, m.stem.weight, m.stem.bias, padding=7)
    with torch.no_grad():
        got = m._stem_fast(codes).transpose(1, 2)
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)


def test_eval_with_gradients_takes_the_reference_path():
    # in-place operations of the fast path cannot be differentiated: with gradients on, eval
    # runs the modules (a saliency map, say), and gives the same numbers
    _, m = build(window=64, tower=2, crop=2)
    _random_eval_state(m, seed=26)
    batch = {"sequence": random_codes(5, m.sequence_length, seed=27)}
    y = m(batch)
    assert y.requires_grad
    y.sum().backward()
    assert m.stem.weight.grad is not None and m.stem.weight.grad.abs().sum() > 0
    with torch.no_grad():
        assert torch.allclose(m(batch), y.detach(), rtol=1e-5, atol=1e-5)


def test_fast_eval_rejects_codes_other_than_acgtn():
    _, m = build(window=64, tower=2, crop=2)
    codes = random_codes(3, m.sequence_length, seed=28)
    codes[1, 5] = 7
    with torch.no_grad(), pytest.raises(ValueError, match="base code 7"):
        m.eval()({"sequence": codes})


def test_fast_eval_runs_every_piece_at_one_shape(monkeypatch):
    """Pieces of one shape only (oneDNN keeps memory per input shape: pieces of every size
    grew score-vcf's memory with the VCF); the padding rows change no output."""
    import varfx.nn.seqcnn as sc

    torch.manual_seed(0)
    m = sc.SeqCNNModule(window=32, width=4, tower=1, dilated=1, max_shift=2).eval()
    seen = []
    piece = m._fast_piece
    monkeypatch.setattr(m, "_fast_piece", lambda b: seen.append(b["sequence"].shape[0]) or piece(b))
    seq = torch.randint(0, 5, (sc.FAST_PIECE + 7, m.sequence_length), dtype=torch.uint8)
    alt = torch.randint(0, 5, (len(seq),))
    with torch.inference_mode():
        whole = m._eval_forward_fast({"sequence": seq, "alt": alt})
        one_by_one = torch.cat([m._eval_forward_fast({"sequence": seq[i:i + 1], "alt": alt[i:i + 1]})
                                for i in (0, 5, len(seq) - 1)])
    assert set(seen) == {sc.FAST_PIECE} and whole.shape == (len(seq),)
    torch.testing.assert_close(whole[[0, 5, len(seq) - 1]], one_by_one, rtol=1e-5, atol=1e-6)


def _genome_batch(m, n, *, spacing, seed, contigs=2, length=None, p_n=0.05):
    """Variants on ``contigs`` random contigs: their stored sequences read from the contig
    (N past either end), loci ``contig << 32 | position``, sorted, with repeats."""
    rng = np.random.default_rng(seed)
    S = m.sequence_length
    length = length or n * spacing // contigs + S
    seqs, loci = [], []
    for c in range(1, contigs + 1):
        genome = rng.choice(5, size=length, p=[(1 - p_n) / 4] * 4 + [p_n])
        k = n // contigs + (c <= n % contigs)
        pos = np.sort(rng.integers(0, length, k))  # near both ends too: N beyond them
        if k > 3:
            pos[1] = pos[0]  # a repeated position
        padded = np.concatenate([np.full(S, 4), genome, np.full(S, 4)])
        for p in pos:
            seqs.append(padded[S + p - S // 2:S + p + S // 2 + 1])
            loci.append((c << 32) | int(p))
    return {"sequence": torch.tensor(np.array(seqs), dtype=torch.uint8),
            "alt": torch.tensor(rng.integers(0, 5, len(seqs)), dtype=torch.uint8),
            "locus": torch.tensor(loci, dtype=torch.int64)}


def _spy_shared(monkeypatch, m):
    calls = []
    shared = m._shared_block_input
    monkeypatch.setattr(m, "_shared_block_input", lambda *a: calls.append(shared(*a)) or calls[-1])
    return calls


@pytest.mark.parametrize("options", [
    {},
    {"window": 100, "tower": 3, "crop": 3, "max_shift": 3, "rc": False},
    {"window": 62, "tower": 2, "crop": 2, "max_shift": 0, "variant_token": False, "allele_aware": True},
    {"window": 38, "width": 5, "tower": 2, "dilated": 3, "crop": 1, "max_shift": 5, "allele_aware": True},
])
@pytest.mark.parametrize("block", [False, True])
def test_shared_stem_over_neighbouring_windows_equals_the_reference_path(options, block, monkeypatch):
    # with loci, the first layers are computed once per genome position over the stretch the
    # overlapping windows cover and gathered per window, the window ends and the variant
    # recomputed per window: the same function as the reference path, which reads each
    # window alone.  Dense variants on two contigs (so that runs break, and windows reach
    # past the contigs' ends: N), N bases, a repeated position, alleles; pieces of 10
    # variants so that runs cross piece boundaries.  Tolerances as in the fast-path test
    import varfx.nn.seqcnn as mod

    _, m = build(**options)
    _random_eval_state(m, seed=31)
    monkeypatch.setattr(mod, "SHARE_MAX", math.inf)  # share even where the window is short
    monkeypatch.setattr(mod, "FAST_PIECE", 10)
    monkeypatch.setattr(mod, "SHARE_BLOCK", block)  # the first tower block shared too
    calls = _spy_shared(monkeypatch, m)
    batch = _genome_batch(m, 45, spacing=7, seed=32)
    with torch.no_grad():
        ref = m._eval_forward_reference(batch)
        fast = m._eval_forward_fast(batch)
        assert len(calls) == 5 and all(u is not None and u[1] == block for u in calls)
        scale = float(ref.abs().max())
        assert ref.std() > 0
        assert float((fast - ref).abs().max()) <= 2e-5 * scale, (float((fast - ref).abs().max()), scale)
        m.double()
        fast, ref = m._eval_forward_fast(batch), m._eval_forward_reference(batch)
        assert float((fast - ref).abs().max()) <= 1e-10 * float(ref.abs().max())


def test_shared_stem_only_where_it_pays_and_the_loci_agree(monkeypatch):
    # loci whose sequences disagree where they claim to overlap (not one genome) are not
    # shared: the window-by-window path, the same values
    import varfx.nn.seqcnn as mod

    _, m = build(window=64, tower=2, crop=2, max_shift=2)
    _random_eval_state(m, seed=33)
    calls = _spy_shared(monkeypatch, m)
    batch = _genome_batch(m, 20, spacing=5, seed=34, contigs=1, p_n=0.0)
    S = m.sequence_length
    batch["sequence"][5, S // 2 + 10] = (batch["sequence"][5, S // 2 + 10] + 1) % 4
    with torch.no_grad():
        monkeypatch.setattr(mod, "SHARE_MAX", math.inf)
        fast, ref = m._eval_forward_fast(batch), m._eval_forward_reference(batch)
        assert calls == [None]
        assert float((fast - ref).abs().max()) <= 2e-5 * float(ref.abs().max())
        monkeypatch.undo()
        # the default network at the default SHARE_MAX: variants 20 bases apart share (the
        # tape is ~1/20 of the positions window by window), 1,000 apart do not
        _, m = build()
        _random_eval_state(m, seed=35)
        calls = _spy_shared(monkeypatch, m)
        for spacing in (20, 1000):
            m._eval_forward_fast(_genome_batch(m, mod.FAST_PIECE, spacing=spacing, seed=36, contigs=1))
        assert [c is not None for c in calls] == [True, False]
