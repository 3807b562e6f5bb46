"""The bag objectives (`mil`, `distil`) and the trainer for bags: conformance suites,
pooling against loops, negatives drawn per epoch, held-out chromosomes kept out of
training, an end-to-end fit on a tiny dataset whose one feature marks the causal
variant of each bag, and exact resume."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from varfx.cli import cli
from varfx.testing.objectives import DistilConformance, MILConformance, synthetic_bags

import _mil_data
from _train import interrupted_after_checkpoint, one_and_two_processes

torch.set_num_threads(1)


# ------------------------------------------------------------------- conformance suites


class TestMILMax(MILConformance):
    objective_options = {"pool": "max"}


class TestMILLSE(MILConformance):
    objective_options = {"pool": "lse", "r": 3.0}


class TestMILGMean(MILConformance):
    objective_options = {"pool": "gmean", "r": 2.5}


class TestMILISR(MILConformance):
    objective_options = {"pool": "isr", "positive_weight": 2.0}


class TestMILInstance(MILConformance):
    objective_options = {"label": "instance", "negatives": "single"}


class TestDistil(DistilConformance):
    objective_options = {"top_weight": 100.0}


# ----------------------------------------------------------------------------- pooling


def test_pooling_limits_and_stability():
    from varfx.default_plugins.objectives import pool_logits

    x = torch.tensor([0.3, -1.2, 2.0, 0.7, -40.0, -45.0, -50.0], dtype=torch.float64)
    seg = torch.tensor([0, 0, 0, 1, 2, 2, 2])
    sizes = torch.tensor([3, 1, 3])
    mx = pool_logits(x, seg, sizes, "max")
    assert mx.tolist() == [2.0, 0.7, -40.0]
    # lse and gmean tend to the max as r grows; a bag of one is its instance under lse
    lse = pool_logits(x, seg, sizes, "lse", 1e4)
    assert torch.allclose(lse, mx, atol=1e-3)
    assert float(pool_logits(x, seg, sizes, "lse", 2.0)[1]) == pytest.approx(0.7, abs=1e-15)
    gm = pool_logits(x[:4], seg[:4], sizes[:2], "gmean", 1e4)
    assert torch.allclose(gm, mx[:2], atol=1e-2)
    # noisy-or where 1 - prod(1 - p) rounds to 0 in float64: logit ~ log sum exp(x)
    isr = pool_logits(x, seg, sizes, "isr")
    want = float(torch.logsumexp(x[4:], 0))
    assert float(isr[2]) == pytest.approx(want, rel=1e-9)
    p = torch.sigmoid(x[:3])
    assert float(isr[0]) == pytest.approx(float(torch.logit(1 - torch.prod(1 - p))), rel=1e-12)


def test_non_finite_logit_names_the_bag():
    from varfx.errors import UserError
    from varfx.plugins import lookup

    units, logits = synthetic_bags()
    obj = lookup("objectives", "mil")()
    logits[units[2].variants[1]] = np.nan
    with pytest.raises(UserError, match=r"positive bag 'pos2' \(chromosome 1, 200-207, 7 variants\)") as err:
        obj.batch_loss(obj.weighted(units[2:3]), lambda idx: torch.as_tensor(logits[idx]), None)
    assert "\n" not in str(err.value)


def test_option_checks():
    from varfx.errors import UserError
    from varfx.plugins import lookup

    cls = lookup("objectives", "mil")
    with pytest.raises(UserError, match=re.escape("pool='mean' for objective 'mil': expected one of max|lse|gmean|isr")):
        cls.parse_options(["pool=mean"])
    with pytest.raises(UserError, match="annealing is for pool=lse or pool=gmean"):
        cls(pool="max", anneal=50.0)
    with pytest.raises(UserError, match="above the starting r"):
        cls(pool="lse", r=5.0, anneal=2.0)
    with pytest.raises(UserError, match="warmup_epochs=20.*only 10 epochs"):
        cls(warmup_epochs=20).start_epoch(0, 10)


def test_schedule_of_phases():
    from varfx.plugins import lookup

    obj = lookup("objectives", "mil")(pool="lse", r=2.0, anneal=200.0, warmup_epochs=0.25)
    phases = []
    for e in range(12):
        obj.start_epoch(e, 12)
        phases.append(obj._phase)
    assert [p[0] for p in phases] == [True] * 3 + [False] * 9  # 0.25 of 12 epochs of warm-up
    rs = [p[1] for p in phases[3:]]
    assert rs[0] == pytest.approx(2.0) and rs[-1] == pytest.approx(200.0)
    assert np.allclose(np.diff(np.log(rs)), np.log(100) / 8)  # geometric
    assert obj._target() == (False, 200.0)  # validation: the final pooled loss


# ----------------------------------------------------------- negatives, epochs, held-out


def _bagset(seed=0):
    from varfx.store.bags import Bag, BagSet

    rng = np.random.default_rng(seed)
    pos = [Bag(index=i, name=f"b{i}", chrom=1 + i % 3, start=i, end=i + 1,
               variants=np.arange(20 * i, 20 * i + 3 + i)) for i in range(6)]
    neg = np.arange(200, 300)
    return BagSet(positives=pos, negatives=neg, negative_chrom=1 + rng.integers(0, 3, 100))


@pytest.mark.parametrize("negatives,k", [("matched", 1), ("single", 2), ("matched", 3)])
def test_epoch_negatives_drawn_from_seed_and_epoch(negatives, k):
    from varfx.plugins import lookup

    bags = _bagset()
    train, val = bags.select(exclude=[3]), bags.select(chroms=[3])
    obj = lookup("objectives", "mil")(negatives=negatives, negatives_per_bag=k, positive_weight=2.0,
                                      instance_weights="uniform")
    bp = np.arange(400) * 10
    tr, vu = obj.prepare_bags(train, val, dataset=".", batch=None, bp=bp, seed=7)
    pool = set(train.negatives.tolist())
    e0, e0b, e1 = obj.epoch_units(tr, 0, 7), obj.epoch_units(tr, 0, 7), obj.epoch_units(tr, 1, 7)
    neg0 = [u for u in e0 if not u.label]
    assert [u.variants.tolist() for u in e0] == [u.variants.tolist() for u in e0b]  # a function of (seed, epoch)
    assert [u.variants.tolist() for u in e0] != [u.variants.tolist() for u in e1]  # afresh each epoch
    assert len(neg0) == k * len(tr) and len(e1) == len(e0)
    sizes = [u.n for u in tr for _ in range(k)] if negatives == "matched" else [1] * (k * len(tr))
    assert [u.n for u in neg0] == sizes
    assert all(set(u.variants.tolist()) <= pool and len(set(u.variants.tolist())) == u.n for u in neg0)
    # held-out: validation bags and negatives only from chromosome 3, fixed
    vpool = set(val.negatives.tolist())
    assert {u.chrom for u in vu if u.label} == {3}
    assert all(set(u.variants.tolist()) <= vpool for u in vu if not u.label)
    # weights: w * mean over positives + mean over negatives, as a sum / len(units)
    x = np.random.default_rng(0).normal(size=400)
    terms = obj.unit_terms(e0, lambda idx: torch.as_tensor(x[idx]))
    lab = np.array([u.label for u in e0], bool)
    want = 2.0 * float(terms[torch.as_tensor(lab)].mean()) + float(terms[torch.as_tensor(~lab)].mean())
    got = float(obj.batch_loss(e0, lambda idx: torch.as_tensor(x[idx]))) / obj.batch_size(e0)
    assert got == pytest.approx(want, rel=1e-12)


# ----------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def bag_ds(tmp_path_factory):
    return _mil_data.build(tmp_path_factory.mktemp("mil"))


def invoke(args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def held_out_auroc(model_dir, ds):
    """Within the held-out bags: the causal member (the one marked) against its bag
    neighbours, ranked by the fitted instance logit."""
    from varfx.store.bags import load_bags
    from varfx.store.dataset import open_dataset
    from varfx.store.model import load_model
    from varfx.store.variants import predict_log_f

    meta, module = load_model(model_dir)
    with open_dataset(ds) as h5:
        x = predict_log_f(module, h5)
        mark = h5["features"]["scalar"][:, 0]
    pos, neg = [], []
    for b in load_bags(ds).select(chroms=meta["holdout_chroms"]).positives:
        c = b.variants[np.argmax(mark[b.variants])]
        pos.append(x[c])
        neg += [x[v] for v in b.variants if v != c]
    pos, neg = np.array(pos)[:, None], np.array(neg)[None, :]
    return float(np.mean(pos > neg) + 0.5 * np.mean(pos == neg)), meta, module


def test_mil_fit_learns_the_causal_feature(bag_ds, tmp_path):
    ds, _ = bag_ds
    r = invoke(["fit", ds, "--prior", "glm", "--objective", "mil", "--epochs", 60, "-o", tmp_path / "m"])
    assert r.exit_code == 0, r.output
    auroc, meta, module = held_out_auroc(tmp_path / "m", ds)
    assert meta["holdout_chroms"] == [6] and meta["sigma2"] is None and meta["prior_output"] == "logit"
    assert meta["optimizer"] == "adamw" and "bags" in meta["optimizer_reason"]
    assert meta["prior"]["options"]["alpha"] == 0.0 and meta["alpha_source"] == "auto: bag objective"
    assert meta["train_bags"] == 24 and meta["val_bags"] == 8
    w = module.linear.weight.detach().numpy()[0]
    # the marking feature gets a clearly positive weight, the noise features next to none
    assert w[0] > 0.3 and np.all(np.abs(w[1:]) < 0.2 * w[0]), w
    assert auroc > 0.95, auroc
    curve = meta["curve"]
    assert curve[-1]["val_loss"] < curve[0]["val_loss"]
    assert not (tmp_path / "m" / "windows.h5").exists()


def test_held_out_bags_and_negatives_never_reach_training(bag_ds, tmp_path, monkeypatch):
    from varfx.default_plugins.objectives import MultipleInstance
    from varfx.stages.fit import run_fit
    from varfx.store.dataset import open_dataset

    ds, _ = bag_ds
    seen_train, seen_val = set(), set()
    real = MultipleInstance.batch_loss

    def spy(self, units, log_f_of, sigma2=None, phase=None):
        target = seen_train if torch.is_grad_enabled() else seen_val
        for u in units:
            target.update(int(v) for v in u.variants)
        return real(self, units, log_f_of, sigma2, phase)

    monkeypatch.setattr(MultipleInstance, "batch_loss", spy)
    run_fit(ds, tmp_path / "m", prior="glm", objective="mil", objective_options=["negatives_per_bag=3"],
            holdout_chroms="2,6", epochs=6, batch_windows=10, progress=False)
    with open_dataset(ds) as h5:
        chrom = h5["variants"]["chrom"][:]
    assert seen_train and seen_val
    assert set(chrom[sorted(seen_train)].tolist()) == {1, 3}
    assert set(chrom[sorted(seen_val)].tolist()) == {2, 6}


def test_interrupted_mil_fit_resumes_to_the_same_parameters(bag_ds, tmp_path):
    from varfx.stages.fit import run_fit

    ds, _ = bag_ds
    opts = dict(prior="glm", objective="mil", objective_options=["warmup_epochs=3", "pool=lse", "anneal=50"],
                epochs=8, batch_windows=10, checkpoint_every=1, seed=4, progress=False)
    run_fit(ds, tmp_path / "full", **opts)

    # checkpoint 17 is mid-epoch 4 (48 units, 5 steps per epoch), after the warm-up
    interrupted_after_checkpoint(17, lambda: run_fit(ds, tmp_path / "part", **opts))
    again = run_fit(ds, tmp_path / "part", **opts)
    assert again["resumed_from"] == "epoch 4 step 2"
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)["prior"]
    b = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)["prior"]
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-12, atol=1e-14), k
    ca = json.loads((tmp_path / "full" / "model.json").read_text())["curve"]
    cb = json.loads((tmp_path / "part" / "model.json").read_text())["curve"]
    assert [x["train_loss"] for x in ca] == pytest.approx([x["train_loss"] for x in cb], rel=1e-12)
    assert [x["val_loss"] for x in ca] == pytest.approx([x["val_loss"] for x in cb], rel=1e-12)


def test_distil_fits_the_teachers_mean(bag_ds, tmp_path):
    from varfx.stages.fit import run_fit
    from varfx.store.dataset import open_dataset
    from varfx.store.model import load_model
    from varfx.store.variants import predict_log_f

    ds, _ = bag_ds
    teachers = []
    for seed in (0, 1):
        d = tmp_path / f"t{seed}"
        run_fit(ds, d, prior="glm", objective="mil", epochs=30, seed=seed, progress=False,
                objective_options=["negatives=single", "warmup_epochs=10"])
        teachers.append(str(d))
    r = invoke(["fit", ds, "--prior", "glm", "--objective", "distil", "-O", "teachers=" + ",".join(teachers),
                "--epochs", 80, "--lr", 0.1, "-o", tmp_path / "s"])
    assert r.exit_code == 0, r.output
    with open_dataset(ds) as h5:
        ps = [1 / (1 + np.exp(-predict_log_f(load_model(t)[1], h5))) for t in teachers]
        student = 1 / (1 + np.exp(-predict_log_f(load_model(tmp_path / "s")[1], h5)))
    target = np.mean(ps, 0)
    meta = json.loads((tmp_path / "s" / "model.json").read_text())
    assert meta["prior_output"] == "logit" and meta["curve"][-1]["train_loss"] < meta["curve"][0]["train_loss"]
    # a GLM student of GLM teachers can match their mean closely (not exactly: the mean
    # of sigmoids is not a sigmoid of a linear function)
    assert np.max(np.abs(student - target)) < 0.05, np.max(np.abs(student - target))
    auroc, *_ = held_out_auroc(tmp_path / "s", ds)
    assert auroc > 0.95


def test_bag_fit_dry_run_and_optimizer(bag_ds, tmp_path):
    ds, _ = bag_ds
    r = invoke(["fit", ds, "--prior", "glm", "--objective", "mil", "-O", "negatives_per_bag=2", "--dry-run",
                "-o", tmp_path / "m"])
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)
    assert plan["optimizer"] == "adamw" and plan["units_per_epoch"] == 24 * 3 and plan["sigma2"] is None
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_mil_data_parallel_two_processes_match_one(bag_ds, tmp_path):
    """torchrun with 2 CPU processes (gloo): each rank takes every second bag of a step;
    the weighted sums add up to one process's loss, so the fits agree."""
    ds, _ = bag_ds
    args = ["fit", str(ds), "--prior", "glm", "--objective", "mil", "-O", "negatives_per_bag=2",
            "--batch-windows", "12", "--epochs", "6", "-O", "warmup_epochs=2", "--seed", "2"]
    one, two = one_and_two_processes(invoke, args, tmp_path)
    ca = json.loads((one / "model.json").read_text())["curve"]
    cb = json.loads((two / "model.json").read_text())["curve"]
    assert [x["train_loss"] for x in ca] == pytest.approx([x["train_loss"] for x in cb], rel=1e-10)
    assert [x["val_loss"] for x in ca] == pytest.approx([x["val_loss"] for x in cb], rel=1e-10)
    a = torch.load(one / "checkpoint.pt", weights_only=True)["prior"]
    b = torch.load(two / "checkpoint.pt", weights_only=True)["prior"]
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-10, atol=1e-12), k


def test_patience_keeps_the_best_validation_epoch(bag_ds, tmp_path):
    from varfx.stages.fit import run_fit

    ds, _ = bag_ds
    # a learning rate large enough that the pooled validation loss does not fall steadily
    run_fit(ds, tmp_path / "m", prior="glm", objective="mil", epochs=40, lr=2.0, patience=3, progress=False,
            objective_options=["warmup_epochs=2"])
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    best = min(range(len(meta["curve"])), key=lambda i: meta["curve"][i]["val_loss"]) + 1
    assert meta["best_epoch"] == best and meta["weights"] == "best validation epoch"
    assert meta["stopped_early"] == (len(meta["curve"]) < 40)



# ------------------------------------------------- the single-effect weights of the warm-up


def test_single_effect_pip_is_the_normalised_approximate_bayes_factor():
    from varfx.default_plugins.objectives import single_effect_pip

    z = np.array([0.5, -3.0, 6.0, 2.0])
    s2 = 25.0
    # Wakefield's ABF of one effect with prior variance s2 on the z scale, directly
    bf = (1 + s2) ** -0.5 * np.exp(z ** 2 / 2 * s2 / (1 + s2))
    assert single_effect_pip(z, s2) == pytest.approx(bf / bf.sum(), rel=1e-12)
    # |z| of any size: finite, and the largest |z| takes (nearly) all the weight
    big = single_effect_pip(np.array([40.0, 39.0, 1.0]))
    assert np.all(np.isfinite(big)) and big.sum() == pytest.approx(1.0) and big[0] > 0.999


def test_instance_loss_weighs_members_by_their_weights():
    import dataclasses

    from varfx.api import BagUnit
    from varfx.plugins import lookup

    obj = lookup("objectives", "mil")(label="instance")
    units = [BagUnit("p", 1, 0, 9, np.array([0, 1, 2]), 1, member_weight=np.array([0.7, 0.2, 0.1])),
             BagUnit("n", 1, 0, 9, np.array([3, 4]), 0)]
    logits = torch.tensor([1.5, -0.3, 0.2, 0.4, -1.0], dtype=torch.float64)
    terms = obj.unit_terms(units, lambda idx: logits[torch.as_tensor(idx)])
    sp = torch.nn.functional.softplus
    assert float(terms[0]) == pytest.approx(float(0.7 * sp(-logits[0]) + 0.2 * sp(-logits[1]) + 0.1 * sp(-logits[2])))
    assert float(terms[1]) == pytest.approx(float((sp(logits[3]) + sp(logits[4])) / 2))  # no weights: the mean
    uniform = obj.unit_terms([dataclasses.replace(units[0], member_weight=None)], lambda i: logits[torch.as_tensor(i)])
    assert float(uniform[0]) == pytest.approx(float(sp(-logits[:3]).mean()))


def test_pip_weights_come_from_the_datasets_z(bag_ds, tmp_path):
    from varfx.default_plugins.objectives import single_effect_pip
    from varfx.store.dataset import open_dataset
    from varfx.train.setup import prepare

    ds, _ = bag_ds
    with open_dataset(ds) as h5:
        z = h5["variants"]["z"][:]
    for weights in ("pip", "uniform"):
        s = prepare(ds, prior="glm", objective="mil", solver=None, prior_options=(), solver_options=(),
                    objective_options=[f"instance_weights={weights}"], alpha=None, sigma2=None, holdout_chroms=None,
                    device="cpu", dtype="float64", threads=1, loader_workers=0)
        for u in s.train + [u for u in s.val if u.label]:
            if weights == "pip":
                assert u.member_weight == pytest.approx(single_effect_pip(z[u.variants]))
            else:
                assert u.member_weight is None
