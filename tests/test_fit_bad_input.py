"""Bad inputs to ``varfx fit``: exit code 1 with one line naming the option, file or
value (2 for click usage errors, whose only error line names the option), never a
traceback, and nothing new left behind."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from click.testing import CliRunner

from varfx.cli import cli

from _data import write_subset

BASE = ["--alpha", "0", "--sigma2", "1", "--holdout-chroms", "none"]


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fitbad")
    prefix, ss = write_subset(tmp / "in", 2000, 600)
    out = tmp / "ds"
    runner = CliRunner()
    assert runner.invoke(cli, ["ingest", "--sumstats", str(ss), "--ld", str(prefix), "-o", str(out)]).exit_code == 0
    r = runner.invoke(cli, ["precompute-ld", str(out), "--window-kb", "500", "--flank-kb", "250"])
    assert r.exit_code == 0, r.output
    return out


def listing(path):
    return sorted((str(p.relative_to(path)), p.stat().st_size if p.is_file() else -1) for p in path.rglob("*"))


def fails(args, parent, *, code=1, needles=()):
    """Run ``varfx fit`` and check the failure contract; returns the error line."""
    before = listing(parent)
    r = CliRunner().invoke(cli, ["fit", *map(str, args)])
    assert r.exit_code == code, (args, r.exit_code, r.output)
    assert "Traceback" not in r.output, r.output
    # the progress bar's last state (the line starting "fit ") is the display, not a message
    lines = [x for x in r.stderr.splitlines() if x.strip() and not x.startswith("fit ")]
    if code == 1:
        assert len(lines) == 1, r.stderr
    errors = [x for x in lines if x.startswith("Error")]
    assert len(errors) == 1, r.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    assert r.stdout == ""
    assert listing(parent) == before, "something new left behind"
    return errors[0]


@pytest.mark.parametrize("option,value", [
    ("--lr", "nan"), ("--lr", "-1"), ("--lr", "inf"), ("--lr", "0"), ("--warmup", "-0.1"), ("--warmup", "nan"),
    ("--accumulate", "0"), ("--clip", "nan"), ("--clip", "-1"), ("--batch-windows", "-1"), ("--threads", "-1"),
    ("--checkpoint-every", "-5"), ("--patience", "-1"), ("--epochs", "0"), ("--weight-decay", "inf"),
    ("--gtol", "0"), ("--gtol", "nan"), ("--max-iter", "0"),
])
def test_numeric_options_refused_at_the_command_line(ds, tmp_path, option, value):
    fails([ds, *BASE, option, value, "-o", tmp_path / "m"], tmp_path, code=2, needles=[option])


@pytest.mark.parametrize("args,needles", [
    (["--alpha", "nan"], ["--alpha", "nan"]),
    (["-p", "init=nan"], ["init='nan'"]),
    (["-p", "init=inf"], ["init='inf'"]),
    (["--alpha", "banana"], ["--alpha", "banana"]),
    (["--sigma2", "inf"], ["--sigma2", "inf"]),
    (["--sigma2", "nan"], ["--sigma2", "nan"]),
    (["--alpha", "0.3", "-p", "alpha=0.5"], ["--alpha", "alpha=0.5", "conflict"]),
    (["--objective", "ldsr", "--solver", "nystrom"], ["--solver nystrom", "ldsr", "no solver"]),
    (["--objective", "ldsr", "-s", "rank=5"], ["-s rank=5", "no solver"]),
    (["--holdout-chroms", "all"], ["no training windows", "[22]"]),
    (["--holdout-chroms", "5"], ["--holdout-chroms", "5", "not in the dataset", "22"]),
    (["--holdout-chroms", "x,y"], ["--holdout-chroms", "x,y"]),
    (["--optimizer", "lbfgs", "--solver", "cg-slq"], ["lbfgs", "exact solver", "cg-slq"]),
    (["--optimizer", "lbfgs", "--epochs", "5"], ["--epochs", "lbfgs"]),
    (["--optimizer", "adamw", "--gtol", "1e-3"], ["--gtol", "adamw"]),
    (["--optimizer", "lbfgs", "--loader-workers", "1"], ["lbfgs", "--loader-workers"]),
])
def test_bad_or_conflicting_options(ds, tmp_path, args, needles):
    given = set(args[::2])
    base = [x for k, v in zip(BASE[::2], BASE[1::2]) if k not in given for x in (k, v)]
    fails([ds, *base, *args, "-o", tmp_path / "m"], tmp_path, needles=needles)


def test_unwritable_model_directory(ds, readonly_dir):
    msg = fails([ds, *BASE, "-o", readonly_dir / "m"], readonly_dir, needles=["read-only file system"])
    assert str(readonly_dir / "m") in msg


def test_unwritable_log_leaves_no_model_directory(ds, tmp_path, readonly_dir):
    fails([ds, *BASE, "--log-jsonl", readonly_dir / "fit.jsonl", "-o", tmp_path / "m"], tmp_path,
          needles=["fit.jsonl", "read-only file system"])
    assert not (tmp_path / "m").exists()


def test_a_diverging_loss_names_the_parameter_or_window(ds, tmp_path):
    # from a tiny start a learning rate of 1e4 sends log c (and f) out of range
    msg = fails([ds, *BASE, "-p", "init=1e-12", "--optimizer", "adamw", "--lr", "1e4", "--clip", "0", "--warmup", "0",
                 "--epochs", "5", "-o", tmp_path / "m"], tmp_path, needles=["smaller --lr"])
    assert "parameter log_c" in msg or "window" in msg, msg


def test_a_failed_fit_removes_the_log_it_started(ds, tmp_path):
    fails([ds, *BASE, "-p", "init=1e-12", "--optimizer", "adamw", "--lr", "1e4", "--clip", "0", "--warmup", "0",
           "--epochs", "5", "--log-jsonl", tmp_path / "fit.jsonl", "-o", tmp_path / "m"], tmp_path,
          needles=["smaller --lr"])


# ---------------------------------------------------------------------------------------
# checkpoints: the model directory exists with a checkpoint.pt that cannot be used


@pytest.fixture(scope="module")
def good_model(ds, tmp_path_factory):
    out = tmp_path_factory.mktemp("good") / "m"
    r = CliRunner().invoke(cli, ["fit", str(ds), *BASE, "--optimizer", "adamw", "--epochs", "2", "-o", str(out)])
    assert r.exit_code == 0, r.output
    return out


def _broken(good_model, tmp_path, write):
    model = tmp_path / "m"
    shutil.copytree(good_model, model)
    write(model / "checkpoint.pt")
    return model


def _resave(edit):
    def write(path):
        ckpt = torch.load(path, weights_only=True)
        edit(ckpt)
        torch.save(ckpt, path)
    return write


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize("name,write,needles", [
    ("zero-byte", lambda p: p.write_bytes(b""), ["zero bytes"]),
    ("truncated", lambda p: p.write_bytes(p.read_bytes()[:200]), ["unreadable checkpoint"]),
    ("pickle", lambda p: torch.save({"prior": Evil()}, p), ["tensor-only", "never"]),
    ("not a dict", lambda p: torch.save([torch.zeros(1)], p), ["not a varfx checkpoint"]),
    ("missing keys", _resave(lambda c: c.pop("optimizer")), ["not a varfx checkpoint", "optimizer"]),
    ("wrong shape", _resave(lambda c: c["prior"].update(log_c=torch.zeros(3))), ["another prior", "log_c", "(3,)"]),
    ("unknown key", _resave(lambda c: c["prior"].update(alpha=torch.tensor(0.7))), ["another prior", "alpha"]),
    ("NaN parameter", _resave(lambda c: c["prior"].update(log_c=torch.tensor(float("nan"), dtype=torch.float64))),
     ["parameter log_c", "NaN"]),
    ("other config", _resave(lambda c: c.update(config=json.dumps({**json.loads(c["config"]), "seed": 9}))),
     ["different fit", "seed"]),
])
def test_unusable_checkpoint_refused(ds, good_model, tmp_path, name, write, needles):
    model = _broken(good_model, tmp_path, write)
    msg = fails([ds, *BASE, "--optimizer", "adamw", "--epochs", "2", "-o", model], tmp_path,
                needles=[*needles, "checkpoint" if name != "other config" else "m"])
    assert "weights_only" not in msg


def test_unusable_checkpoint_refused_by_score(ds, good_model, tmp_path):
    model = _broken(good_model, tmp_path, _resave(lambda c: c["prior"].update(log_c=torch.zeros(2))))
    r = CliRunner().invoke(cli, ["score", str(model), str(ds), "-o", str(tmp_path / "s.tsv")])
    assert r.exit_code == 1 and "another prior" in r.stderr and "Traceback" not in r.output
    assert not (tmp_path / "s.tsv").exists()


# ---------------------------------------------------------------------------------------
# bag objectives (mil, distil): bags.h5 missing or stale, options out of choice, nothing
# left to train on, teachers that are not fits of this dataset

import _mil_data  # noqa: E402


@pytest.fixture(scope="module")
def bag_ds(tmp_path_factory):
    ds, _ = _mil_data.build(tmp_path_factory.mktemp("bagbad"))
    return ds


@pytest.fixture(scope="module")
def bag_teacher(bag_ds, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "t"
    r = CliRunner().invoke(cli, ["fit", str(bag_ds), "--prior", "glm", "--objective", "mil", "--epochs", "4",
                                 "-O", "warmup_epochs=1", "-o", str(out)])
    assert r.exit_code == 0, r.output
    return out


MIL = ["--prior", "glm", "--objective", "mil", "--epochs", "2"]


@pytest.mark.parametrize("args,needles", [
    (["-O", "colour=red"], ["objective 'mil'", "no option 'colour'"]),
    (["-O", "pool=mean"], ["pool='mean'", "one of max|lse|gmean|isr"]),
    (["-O", "label=bags"], ["label='bags'", "one of bag|instance"]),
    (["-O", "negatives=many"], ["negatives='many'", "matched|single"]),
    (["-O", "r=0"], ["r='0'", "positive"]),
    (["-O", "r=nan"], ["r='nan'"]),
    (["-O", "negatives_per_bag=0"], ["negatives_per_bag='0'"]),
    (["-O", "positive_weight=-1"], ["positive_weight='-1'"]),
    (["-O", "pool=max", "-O", "anneal=40"], ["anneal=40", "pool=lse or pool=gmean"]),
    (["-O", "warmup_epochs=5"], ["warmup_epochs=5", "only 2 epochs"]),
    (["--holdout-chroms", "all"], ["no training bags", "[1, 2, 3, 6]"]),
    (["--holdout-chroms", "9"], ["--holdout-chroms", "9", "no positive bags", "1, 2, 3, 6"]),
    (["--holdout-chroms", "x"], ["--holdout-chroms", "'x'"]),
    (["--sigma2", "1"], ["--sigma2", "no noise variance"]),
    (["--optimizer", "lbfgs"], ["lbfgs", "bags"]),
    (["--loader-workers", "1"], ["--loader-workers", "bags"]),
    (["--solver", "cholesky"], ["--solver cholesky", "no solver"]),
])
def test_bad_mil_options(bag_ds, tmp_path, args, needles):
    fails([bag_ds, *MIL, *args, "-o", tmp_path / "m"], tmp_path, needles=needles)


def test_mil_without_bags(ds, tmp_path):
    msg = fails([ds, *MIL, "-o", tmp_path / "m"], tmp_path, needles=["no bags.h5", "varfx bags"])
    assert str(ds) in msg


def test_mil_with_stale_bags(bag_ds, tmp_path):
    # a bags.h5 written for another dataset (another content hash) beside this dataset.h5
    import shutil

    copy = tmp_path / "ds"
    shutil.copytree(bag_ds, copy)
    with __import__("h5py").File(copy / "bags.h5", "r+") as f5:
        f5.attrs["dataset_sha256"] = "0" * 64
    fails([copy, *MIL, "-o", tmp_path / "m"], tmp_path, needles=["bags.h5", "another dataset.h5", "varfx bags"])


def test_distil_needs_teachers_of_this_dataset(bag_ds, ds, bag_teacher, good_model, tmp_path):
    base = [bag_ds, "--prior", "glm", "--objective", "distil", "--epochs", "2"]
    fails([*base, "-o", tmp_path / "m"], tmp_path, needles=["-O teachers="])
    fails([*base, "-O", f"teachers={tmp_path / 'nowhere'}", "-o", tmp_path / "m"], tmp_path,
          needles=["no model.json", "nowhere"])
    # a likelihood fit's prior outputs log f, not a logit
    fails([*base, "-O", f"teachers={bag_teacher},{good_model}", "-o", tmp_path / "m"], tmp_path,
          needles=["objective 'full'", "not a logit", str(good_model)])
    # a mil fit of another dataset (same shapes, another content hash)
    import shutil

    other = tmp_path / "other"
    shutil.copytree(bag_teacher, other)
    meta = json.loads((other / "model.json").read_text())
    (other / "model.json").write_text(json.dumps({**meta, "dataset_sha256": "f" * 64, "dataset": "/elsewhere"}))
    fails([*base, "-O", f"teachers={bag_teacher},{other}", "-o", tmp_path / "m"], tmp_path,
          needles=["another dataset", "/elsewhere", str(other)])
