"""Bad inputs to the stages after ingest (precompute-ld, evaluate, score, simulate, demo).

Every case asserts the exit code (1 for a UserError, 2 for a click usage error), one
error line on stderr naming what was wrong, no traceback, and that nothing new is left
behind (no windows.parts/, no partial output, no empty directory).  The data sets are
built once per module from a slice of the chr22 panel; each case copies what it breaks.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from varfx.cli import cli

from _data import PANEL, write_subset
from _train import tree


def invoke(args, **kw):
    return CliRunner().invoke(cli, [str(a) for a in args], **kw)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Two ingested datasets (ds: windows precomputed, a fitted constant-prior model;
    other: another slice of the panel, no windows)."""
    tmp = tmp_path_factory.mktemp("stagebad")
    prefix, ss = write_subset(tmp / "in", 2000, 400)
    ds = tmp / "ds"
    r = invoke(["ingest", "--sumstats", ss, "--ld", prefix, "-o", ds, "--json"])
    assert r.exit_code == 0, r.output
    r = invoke(["precompute-ld", ds, "--window-kb", 200, "--flank-kb", 100, "--json"])
    assert r.exit_code == 0, r.output
    model = tmp / "model"
    r = invoke(["fit", ds, "--alpha", 0, "--sigma2", 1, "--holdout-chroms", "none", "--epochs", 2, "-o", model])
    assert r.exit_code == 0, r.output
    prefix2, ss2 = write_subset(tmp / "in2", 5000, 300)
    other = tmp / "other"
    r = invoke(["ingest", "--sumstats", ss2, "--ld", prefix2, "-o", other, "--json"])
    assert r.exit_code == 0, r.output
    return {"tmp": tmp, "ds": ds, "model": model, "other": other}


# ---------------------------------------------------------------------------------------
# filesystems for unwritable destinations (the tests run as root, which ignores
# permission bits; where mounting is not allowed those cases are skipped)


class Mounts:
    def __init__(self):
        self.points: list[Path] = []

    def tmpfs(self, path: Path, size: str = "1m", fill_from=(), readonly=False) -> Path:
        """A tmpfs at ``path`` of ``size``, holding copies of ``fill_from`` (remounted
        read-only after the copy when ``readonly``)."""
        path.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()})")
        self.points.append(path)
        for src in fill_from:
            shutil.copy(src, path / Path(src).name)
        if readonly:
            r = subprocess.run(["mount", "-o", "remount,ro", str(path)], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
        return path

    def close(self):
        for p in reversed(self.points):
            subprocess.run(["umount", "-l", str(p)], capture_output=True)


@pytest.fixture
def mounts():
    m = Mounts()
    try:
        yield m
    finally:
        m.close()


# ---------------------------------------------------------------------------------------
# case builders: each gets (base, tmp, mounts) and returns (args, exit code, needle)


def copy_ds(base, tmp, windows=False, src="ds") -> Path:
    d = tmp / "case_ds"
    d.mkdir()
    shutil.copy(base[src] / "dataset.h5", d / "dataset.h5")
    if windows:
        shutil.copy(base["ds"] / "windows.h5", d / "windows.h5")
    return d


def edit_h5(path, fn):
    with h5py.File(path, "r+") as h5:
        fn(h5)


def set_value(key, index, value):
    def fn(h5):
        arr = h5[key][:]
        arr[index] = value
        h5[key][...] = arr
    return fn


def set_attr(name, value):
    def fn(h5):
        h5.attrs[name] = value
    return fn


def broken_dataset(kind, windows=False):
    def build(base, tmp, mounts):
        d = copy_ds(base, tmp, windows=windows)
        f = d / "dataset.h5"
        if kind == "empty":
            f.write_bytes(b"")
        elif kind == "truncated":
            data = f.read_bytes()
            f.write_bytes(data[: len(data) // 2])
        elif kind == "garbled":
            f.write_bytes(np.random.default_rng(0).bytes(f.stat().st_size))
        elif kind == "newer":
            edit_h5(f, set_attr("format_version", 99))
        elif kind == "nan_z":
            edit_h5(f, set_value("variants/z", 3, np.nan))
        elif kind == "inf_n":
            edit_h5(f, set_value("variants/n", 0, np.inf))
        return d
    return build


def precompute_on(kind, needle):
    def case(base, tmp, mounts):
        return ["precompute-ld", broken_dataset(kind)(base, tmp, mounts), "--window-kb", 200, "--flank-kb", 100], 1, needle
    return case


def broken_windows(kind):
    def build(base, tmp, mounts):
        if kind == "other_dataset":  # a store of ds beside the dataset.h5 of another slice
            d = copy_ds(base, tmp, src="other")
            shutil.copy(base["ds"] / "windows.h5", d / "windows.h5")
            return d
        d = copy_ds(base, tmp, windows=True)
        f = d / "windows.h5"
        if kind == "missing":
            f.unlink()
        elif kind == "empty":
            f.write_bytes(b"")
        elif kind == "truncated":
            data = f.read_bytes()
            f.write_bytes(data[: len(data) // 3])
        elif kind == "garbled":
            f.write_bytes(np.random.default_rng(1).bytes(f.stat().st_size))
        elif kind == "newer":
            edit_h5(f, set_attr("format_version", 99))
        elif kind == "version1":
            edit_h5(f, set_attr("format_version", 1))
        elif kind == "reingested":  # same variants, one z changed: the content hash differs
            edit_h5(d / "dataset.h5", set_value("variants/z", 5, 0.123))
        elif kind == "nan_G":
            edit_h5(f, set_value("windows/000001/G", (0, 0), np.nan))
        elif kind == "inf_eigvals":
            edit_h5(f, set_value("windows/000000/eigvals", 0, np.inf))
        return d
    return build


def evaluate_on(kind, needle):
    def case(base, tmp, mounts):
        return ["evaluate", base["model"], broken_windows(kind)(base, tmp, mounts), "--chroms", "all"], 1, needle
    return case


def broken_model(kind):
    def build(base, tmp, mounts):
        m = tmp / "case_model"
        if kind == "missing":
            return m
        shutil.copytree(base["model"], m)
        if kind == "garbled_json":
            (m / "model.json").write_text("{ not json")
        elif kind == "foreign_json":
            (m / "model.json").write_text(json.dumps({"format": "something-else", "format_version": 1}))
        elif kind == "json_not_object":
            (m / "model.json").write_text("[1, 2]")
        elif kind == "json_without_prior":
            meta = json.loads((m / "model.json").read_text())
            del meta["prior"]
            (m / "model.json").write_text(json.dumps(meta))
        elif kind == "no_checkpoint":
            (m / "checkpoint.pt").unlink()
        elif kind == "empty_checkpoint":
            (m / "checkpoint.pt").write_bytes(b"")
        elif kind == "nan_parameters":
            import torch

            ck = torch.load(m / "checkpoint.pt", weights_only=True)
            for t in ck["prior"].values():
                if torch.is_floating_point(t):
                    t.fill_(float("nan"))
            torch.save(ck, m / "checkpoint.pt")
        return m
    return build


def model_case(command, kind, needle):
    def case(base, tmp, mounts):
        m = broken_model(kind)(base, tmp, mounts)
        if command == "evaluate":
            return ["evaluate", m, base["ds"], "--chroms", "all"], 1, needle
        return ["score", m, base["ds"], "-o", tmp / "scores.tsv"], 1, needle
    return case


def truth_case(content, needle):
    def case(base, tmp, mounts):
        t = tmp / "truth.tsv"
        t.write_bytes(content)
        return ["evaluate", base["model"], base["ds"], "--chroms", "all", "--truth", t], 1, needle
    return case


def simple(args_fn, code, needle):
    def case(base, tmp, mounts):
        return args_fn(base, tmp, mounts), code, needle
    return case


def precompute_readonly(base, tmp, mounts):
    d = mounts.tmpfs(tmp / "ro_ds", "1m", [base["ds"] / "dataset.h5"], readonly=True)
    return ["precompute-ld", d, "--window-kb", 200, "--flank-kb", 100], 1, "read-only file system"


def precompute_full(base, tmp, mounts):
    size = (base["ds"] / "dataset.h5").stat().st_size + 24 * 1024
    d = mounts.tmpfs(tmp / "full_ds", f"{size}", [base["ds"] / "dataset.h5"])
    return ["precompute-ld", d, "--window-kb", 200, "--flank-kb", 100], 1, "no space left"


def score_readonly(base, tmp, mounts):
    d = mounts.tmpfs(tmp / "ro", "1m", readonly=True)
    return ["score", base["model"], base["ds"], "-o", d / "scores.tsv"], 1, "read-only file system"


def score_full(base, tmp, mounts):
    d = mounts.tmpfs(tmp / "full", "4k")
    # the missing directories a/b are created for the output and must go again
    return ["score", base["model"], base["ds"], "-o", d / "a" / "b" / "scores.tsv"], 1, "no space left"


def simulate_args(*extra, out=None):
    def fn(base, tmp, mounts):
        return ["simulate", "--ld", PANEL, "--truth", "constant", *extra, "-o", out(tmp, mounts) if out else tmp / "sim"]
    return fn


def demo_args(*extra, out=None):
    def fn(base, tmp, mounts):
        return ["demo", *extra, "-o", out(tmp, mounts) if out else tmp / "demo"]
    return fn


CASES = {
    # precompute-ld: options (click usage errors)
    "precompute-window-kb-0": simple(lambda b, t, m: ["precompute-ld", b["ds"], "--window-kb", "0"], 2, "--window-kb"),
    "precompute-window-kb-nan": simple(lambda b, t, m: ["precompute-ld", b["ds"], "--window-kb", "nan"], 2, "--window-kb"),
    "precompute-flank-kb-negative": simple(lambda b, t, m: ["precompute-ld", b["ds"], "--flank-kb", "-1"], 2, "--flank-kb"),
    "precompute-eig-threshold-1": simple(lambda b, t, m: ["precompute-ld", b["ds"], "--eig-threshold", "1"], 2, "--eig-threshold"),
    "precompute-eig-threshold-inf": simple(lambda b, t, m: ["precompute-ld", b["ds"], "--eig-threshold", "inf"], 2, "--eig-threshold"),
    "precompute-workers-0": simple(lambda b, t, m: ["precompute-ld", b["ds"], "--workers", "0"], 2, "--workers"),
    # precompute-ld: the dataset
    "precompute-no-directory": simple(lambda b, t, m: ["precompute-ld", t / "nope"], 1, "not a dataset directory"),
    "precompute-no-dataset-h5": simple(lambda b, t, m: ["precompute-ld", t], 1, "no dataset.h5"),
    "precompute-dataset-empty": precompute_on("empty", "not a readable HDF5 file"),
    "precompute-dataset-truncated": precompute_on("truncated", "varfx ingest"),
    "precompute-dataset-garbled": precompute_on("garbled", "not a readable HDF5 file"),
    "precompute-dataset-newer-version": precompute_on("newer", "written by a newer varfx"),
    "precompute-dataset-nan-z": precompute_on("nan_z", "variants/z: nan at variant 3"),
    "precompute-dataset-inf-n": precompute_on("inf_n", "variants/n: inf at variant 0"),
    "precompute-readonly-dataset-dir": precompute_readonly,
    "precompute-full-disk": precompute_full,
    # evaluate: the window store
    "evaluate-windows-missing": evaluate_on("missing", "run `varfx precompute-ld"),
    "evaluate-windows-empty": evaluate_on("empty", "not a readable HDF5 file"),
    "evaluate-windows-truncated": evaluate_on("truncated", "rebuild it with `varfx precompute-ld"),
    "evaluate-windows-garbled": evaluate_on("garbled", "not a readable HDF5 file"),
    "evaluate-windows-newer-version": evaluate_on("newer", "written by a newer varfx"),
    "evaluate-windows-version-1": evaluate_on("version1", "format version 1"),
    "evaluate-windows-other-dataset": evaluate_on("other_dataset", "computed for another dataset.h5"),
    "evaluate-windows-reingested-dataset": evaluate_on("reingested", "content hash does not match"),
    "evaluate-windows-nan-G": evaluate_on("nan_G", "non-finite values in windows/000001/G"),
    "evaluate-windows-inf-eigvals": evaluate_on("inf_eigvals", "non-finite values in windows/000000/eigvals"),
    "evaluate-dataset-nan-z": simple(lambda b, t, m: ["evaluate", b["model"], broken_dataset("nan_z", windows=True)(b, t, m),
                                                      "--chroms", "all"], 1, "variants/z"),
    # evaluate: the model directory and options
    "evaluate-model-missing": model_case("evaluate", "missing", "model.json"),
    "evaluate-model-json-garbled": model_case("evaluate", "garbled_json", "not valid JSON"),
    "evaluate-model-json-foreign": model_case("evaluate", "foreign_json", "not a varfx model"),
    "evaluate-model-json-not-object": model_case("evaluate", "json_not_object", "model.json"),
    "evaluate-model-json-without-prior": model_case("evaluate", "json_without_prior", "model.json"),
    "evaluate-checkpoint-missing": model_case("evaluate", "no_checkpoint", "checkpoint.pt"),
    "evaluate-checkpoint-empty": model_case("evaluate", "empty_checkpoint", "empty checkpoint (zero bytes"),
    "evaluate-chroms-absent": simple(lambda b, t, m: ["evaluate", b["model"], b["ds"], "--chroms", "5"], 1,
                                     "chromosome 5 is not in the dataset (it has 22)"),
    "evaluate-chroms-garbled": simple(lambda b, t, m: ["evaluate", b["model"], b["ds"], "--chroms", "banana"], 1,
                                      "option --chroms: expected comma-separated chromosome numbers"),
    "evaluate-chroms-none": simple(lambda b, t, m: ["evaluate", b["model"], b["ds"], "--chroms", "none"], 1,
                                   "leaves nothing to evaluate"),
    "evaluate-default-chroms-nothing-held-out": simple(lambda b, t, m: ["evaluate", b["model"], b["ds"]], 1,
                                                       "holds no chromosome out of training"),
    # evaluate --truth
    "evaluate-truth-missing-file": simple(lambda b, t, m: ["evaluate", b["model"], b["ds"], "--chroms", "all",
                                                           "--truth", t / "nope.tsv"], 1, "no such file"),
    "evaluate-truth-no-F-column": truth_case(b"SNP\tBETA\nrs1\t0.1\n", "missing column 'F'"),
    "evaluate-truth-nan-F": truth_case(b"SNP\tF\nrs1\tnan\n", "line 2: expected a finite number >= 0"),
    "evaluate-truth-negative-F": truth_case(b"SNP\tF\nrs1\t-1e-5\n", "line 2: expected a finite number >= 0"),
    "evaluate-truth-short-row": truth_case(b"SNP\tCHR\tF\nrs1\t22\n", "line 2: 2 columns"),
    "evaluate-truth-binary": truth_case(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00", "not a UTF-8 text file"),
    "evaluate-truth-empty": truth_case(b"", "empty truth file"),
    # score
    "score-model-missing": model_case("score", "missing", "model.json"),
    "score-checkpoint-empty": model_case("score", "empty_checkpoint", "empty checkpoint (zero bytes"),
    "score-nan-F": model_case("score", "nan_parameters", "case_model"),
    "score-dataset-garbled": simple(lambda b, t, m: ["score", b["model"], broken_dataset("garbled")(b, t, m),
                                                     "-o", t / "s.tsv"], 1, "not a readable HDF5 file"),
    "score-out-is-directory": simple(lambda b, t, m: ["score", b["model"], b["ds"], "-o", t], 2, "'-o'"),
    "score-readonly-destination": score_readonly,
    "score-full-disk": score_full,
    # simulate
    "simulate-h2-1": simple(simulate_args("--h2", "1"), 2, "--h2"),
    "simulate-h2-0": simple(simulate_args("--h2", "0"), 2, "--h2"),
    "simulate-h2-nan": simple(simulate_args("--h2", "nan"), 2, "--h2"),
    "simulate-n-negative": simple(simulate_args("--n", "-5"), 2, "--n"),
    "simulate-alpha-inf": simple(simulate_args("--alpha", "inf"), 2, "--alpha"),
    "simulate-log-sd-negative": simple(simulate_args("--log-sd", "-1"), 2, "--log-sd"),
    "simulate-sigma2-0": simple(simulate_args("--sigma2", "0"), 2, "--sigma2"),
    "simulate-block-kb-0": simple(simulate_args("--block-kb", "0"), 2, "--block-kb"),
    "simulate-threshold-quantile-1": simple(simulate_args("--threshold-quantile", "1"), 2, "--threshold-quantile"),
    "simulate-seed-negative": simple(simulate_args("--seed", "-1"), 2, "--seed"),
    "simulate-readonly-destination": simple(simulate_args(out=lambda t, m: m.tmpfs(t / "ro", readonly=True) / "sim"),
                                            1, "read-only file system"),
    "simulate-full-disk": simple(simulate_args(out=lambda t, m: m.tmpfs(t / "full", "64k") / "sim"), 1,
                                 "no space left"),
    # demo
    "demo-epochs-0": simple(demo_args("--epochs", "0"), 2, "--epochs"),
    "demo-data-missing": simple(lambda b, t, m: ["demo", "--data", t / "nodata", "-o", t / "demo"], 1,
                                "example data not found"),
    "demo-readonly-destination": simple(demo_args(out=lambda t, m: m.tmpfs(t / "ro", readonly=True) / "demo"), 1,
                                        "read-only file system"),
}


#: Cases run in a child process: an HDF5 write that fails on a full disk leaves the
#: HDF5 library of that process unusable (a later file create crashes it), which does
#: not matter to a command that exits on the error but does to the test process.
IN_CHILD = {"precompute-full-disk", "simulate-full-disk"}


def run_cli(args, child=False):
    """(exit code, stdout, stderr, unexpected exception or None)."""
    if child:
        r = subprocess.run([sys.executable, "-m", "varfx", *map(str, args)], capture_output=True, text=True,
                           timeout=300)
        return r.returncode, r.stdout, r.stderr, None
    r = invoke(args)
    exc = None if r.exception is None or isinstance(r.exception, SystemExit) else r.exception
    return r.exit_code, r.stdout, r.stderr, exc


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(name, base, tmp_path, mounts):
    args, code, needle = CASES[name](base, tmp_path, mounts)
    before = tree(tmp_path, base["tmp"])
    rc, stdout, stderr, exc = run_cli(args, child=name in IN_CHILD)
    assert exc is None, repr(exc)
    assert rc == code, (args, stdout, stderr)
    assert "Traceback" not in stdout + stderr
    lines = stderr.strip().splitlines()
    if code == 1:
        assert len(lines) == 1, stderr
        assert lines[0].startswith("Error: ")
    else:  # click's usage error: usage and hint lines, then one "Error:" line
        lines = [line for line in lines if line.startswith("Error: ")]
        assert len(lines) == 1, stderr
    assert needle in lines[0], (needle, lines[0])
    assert tree(tmp_path, base["tmp"]) == before, "the command left something behind"


def test_demo_full_disk_leaves_nothing(tmp_path, mounts):
    """The demo narrates its stages (rules on stderr) before ingest fails on a full
    disk: the error is the one 'Error:' line, last, and the directory it made is gone."""
    out = mounts.tmpfs(tmp_path / "full", "64k") / "demo"
    rc, stdout, stderr, _ = run_cli(["demo", "-o", out, "--epochs", "1"], child=True)
    assert rc == 1, stderr
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0] and "no space left" in errors[0], stderr
    assert "Traceback" not in stdout + stderr
    assert not out.exists() and list(out.parent.iterdir()) == []


# ---------------------------------------------------------------------------------------
# the stores' good paths next to the bad ones


def test_precompute_reuses_an_up_to_date_store(base, tmp_path):
    d = copy_ds(base, tmp_path, windows=True)
    (d / "windows.h5").unlink()
    r = invoke(["precompute-ld", d, "--window-kb", 200, "--flank-kb", 100, "--json"])
    assert r.exit_code == 0, r.output
    first = json.loads(r.stdout)
    assert first["up_to_date"] is False
    stamp = (d / "windows.h5").stat().st_mtime_ns
    r = invoke(["precompute-ld", d, "--window-kb", 200, "--flank-kb", 100, "--json"])
    assert r.exit_code == 0, r.output
    again = json.loads(r.stdout)
    assert again["up_to_date"] is True and "up to date" in r.stderr
    assert (d / "windows.h5").stat().st_mtime_ns == stamp  # not rewritten
    assert {k: v for k, v in again.items() if k not in ("up_to_date", "resumed_windows")} == \
        {k: v for k, v in first.items() if k not in ("up_to_date", "resumed_windows")}
    # other options, or another dataset content: recomputed
    r = invoke(["precompute-ld", d, "--window-kb", 300, "--flank-kb", 100, "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["up_to_date"] is False
    edit_h5(d / "dataset.h5", set_value("variants/z", 0, 1.5))
    r = invoke(["evaluate", base["model"], d, "--chroms", "all"])
    assert r.exit_code == 1 and "computed for another dataset.h5" in r.output
    r = invoke(["precompute-ld", d, "--window-kb", 300, "--flank-kb", 100, "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["up_to_date"] is False
    r = invoke(["evaluate", base["model"], d, "--chroms", "all", "--json"])
    assert r.exit_code == 0, r.output


def test_dataset_fingerprint_tracks_the_hashed_arrays(base, tmp_path):
    """The fingerprint changes with any hashed array (position, allele, z, n) and not
    with the others; it is independent of how h5py chunks or compresses them."""
    from varfx.store.dataset import dataset_fingerprint

    def fp(path):
        with h5py.File(path, "r") as h5:
            return dataset_fingerprint(h5)

    src = base["ds"] / "dataset.h5"
    ref = fp(src)
    assert ref["n_variants"] == h5py.File(src, "r")["variants"]["bp"].shape[0]
    for key, value in (("variants/bp", 1), ("variants/z", 0.5), ("variants/n", 1234.0), ("variants/a1", "T")):
        f = tmp_path / f"{key.replace('/', '_')}.h5"
        shutil.copy(src, f)
        with h5py.File(f, "r+") as h5:
            arr = h5[key][:]
            arr[7] = arr[7] + value if arr.dtype != object else (b"G" if arr[7] != b"G" else b"T")
            h5[key][...] = arr
        assert fp(f)["sha256"] != ref["sha256"], key
    f = tmp_path / "freq.h5"
    shutil.copy(src, f)
    edit_h5(f, set_value("variants/freq", 7, 0.25))
    assert fp(f) == ref  # freq is not what the LD factors are computed from
    f = tmp_path / "rechunked.h5"
    with h5py.File(src, "r") as a, h5py.File(f, "w") as b:
        for key in a["variants"]:
            b.create_dataset(f"variants/{key}", data=a["variants"][key][:])  # contiguous, uncompressed
    assert fp(f) == ref


def test_atomic_path_removes_the_directories_it_created(tmp_path):
    from varfx.store import atomic_path

    target = tmp_path / "a" / "b" / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "keep").write_text("x")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            raise RuntimeError("boom")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["keep"]


def test_evaluate_defaults_to_the_models_held_out_chromosomes(base, tmp_path):
    m = tmp_path / "m"
    shutil.copytree(base["model"], m)
    meta = json.loads((m / "model.json").read_text())
    (m / "model.json").write_text(json.dumps({**meta, "holdout_chroms": [22]}))
    r = invoke(["evaluate", m, base["ds"], "--json"])
    assert r.exit_code == 0, r.output
    ev = json.loads(r.stdout)
    assert ev["chroms"] == [22]
    r_all = invoke(["evaluate", m, base["ds"], "--chroms", "all", "--json"])
    assert json.loads(r_all.stdout)["loglik"] == ev["loglik"]
    (m / "model.json").write_text(json.dumps({**meta, "holdout_chroms": [6, 7]}))
    r = invoke(["evaluate", m, base["ds"]])
    assert r.exit_code == 1 and "held-out chromosomes (6, 7) are not all in the dataset (it has 22)" in r.output


# ---------------------------------------------------------------------------------------
# kill -9 of a multi-worker precompute


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # the command name (field 2) is in parentheses and may hold spaces
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"  # a zombie has finished


def test_kill9_of_a_multi_worker_precompute_leaves_no_worker(tmp_path):
    prefix, ss = write_subset(tmp_path / "in", 2000, 1200)
    ds = tmp_path / "ds"
    assert invoke(["ingest", "--sumstats", ss, "--ld", prefix, "-o", ds, "--json"]).exit_code == 0
    cmd = [sys.executable, "-m", "varfx", "precompute-ld", str(ds), "--window-kb", "50", "--flank-kb", "300",
           "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = ds / "windows.parts"
    workers: set[int] = set()
    deadline = time.time() + 120
    try:
        while time.time() < deadline and (len(workers) < 2 or len(list(parts.glob("w*.h5"))) < 2):
            workers.update(_children(proc.pid))
            time.sleep(0.02)
        workers.update(_children(proc.pid))
        assert len(workers) >= 2, "the pool did not start two workers"
        assert proc.poll() is None, "precompute-ld finished before the kill: make the data set larger"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        gone_by = time.time() + 5
        while time.time() < gone_by and any(_alive(p) for p in workers):
            time.sleep(0.05)
        alive = [p for p in workers if _alive(p)]
        assert not alive, f"workers {alive} outlived the killed precompute-ld"
    finally:
        for p in workers:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
    # what the workers finished is kept and reused
    assert len(list(parts.glob("w*.h5"))) >= 2 and not (ds / "windows.h5").exists()
    r = invoke(["precompute-ld", ds, "--window-kb", 50, "--flank-kb", 300, "--workers", 2, "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["resumed_windows"] >= 2
    # the windows in flight at the kill left only temporary names, removed with the parts
    assert not parts.exists() and sorted(p.name for p in ds.iterdir()) == ["dataset.h5", "windows.h5"]


def test_write_windows_refuses_non_finite_factors(tmp_path):
    """The merge of part files checks every factor: a NaN in one window's G (an LD
    matrix the factorisation could not handle) is an error naming the window, and no
    windows.h5 appears."""
    from varfx.errors import UserError
    from varfx.store.windows import WindowSpec, write_windows

    parts = tmp_path / "windows.parts"
    parts.mkdir()
    specs = []
    for i, bad in enumerate((False, True)):
        core = np.arange(3 * i, 3 * i + 3)
        specs.append(WindowSpec(i, 22, 1000 * i, 1000 * (i + 1), core, core))
        G = np.eye(3)
        if bad:
            G[1, 2] = np.nan
        with h5py.File(parts / f"w{i:06d}.h5", "w") as h:
            g = h.create_group("window")
            g.attrs.update(index=i, chrom=22, start=1000 * i, end=1000 * (i + 1), logdet_lambda=0.0, k=3,
                           beta_outside=0.0)
            for key, arr in (("core_idx", core), ("plus_idx", core), ("core_pos", np.arange(3)), ("P", np.eye(3)),
                             ("G", G), ("z", np.zeros(3)), ("eigvals", np.ones(3)), ("ld_score", np.ones(3)),
                             ("ld_score_raw", np.ones(3)), ("beta", np.zeros(3))):
                g.create_dataset(key, data=arr)
    with pytest.raises(UserError, match=r"window 1 \(chr22:1000-2000\): non-finite values in G"):
        write_windows(tmp_path, specs, {"window_kb": 1.0}, 1000.0, 0, {"n_variants": 6, "sha256": "x"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["windows.parts"]
    # the same parts without the NaN merge into a store every reader opens
    with h5py.File(parts / "w000001.h5", "r+") as h:
        h["window/G"][...] = np.eye(3)
    write_windows(tmp_path, specs, {"window_kb": 1.0}, 1000.0, 0, {"n_variants": 6, "sha256": "x"})
    with h5py.File(tmp_path / "windows.h5", "r") as h5:
        assert h5.attrs["format_version"] == 2 and h5.attrs["dataset_sha256"] == "x"
        assert list(h5["index"]["n_plus"][:]) == [3, 3]


def test_precompute_up_to_date_on_a_read_only_dataset(base, tmp_path, mounts):
    """A finished store on a read-only filesystem is reported up to date (nothing is
    written, so nothing fails)."""
    d = mounts.tmpfs(tmp_path / "ro", "8m", [base["ds"] / "dataset.h5", base["ds"] / "windows.h5"], readonly=True)
    r = invoke(["precompute-ld", d, "--window-kb", 200, "--flank-kb", 100, "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["up_to_date"] is True


def test_hdf5_os_error_reads_the_errno_and_file_of_an_h5py_write_failure():
    """h5py reports a refused write as a RuntimeError with HDF5's text: the errno
    message and the file name become an OSError (one line via the CLI)."""
    import errno

    from varfx.store import hdf5_os_error

    exc = RuntimeError("Can't decrement id ref count (file write failed: time = Tue Dec  1 11:26:37 2026\n"
                       ", filename = '/data/ds/.windows.h5.x.tmp', file descriptor = 3, errno = 28, "
                       "error message = 'No space left on device', buf = 0x1, total write size = 53)")
    err = hdf5_os_error(exc)
    assert isinstance(err, OSError) and err.errno == errno.ENOSPC and err.filename == "/data/ds/.windows.h5.x.tmp"
    err = hdf5_os_error(RuntimeError("Unable to create file (unable to open file: name = 'x', errno = 30, "
                                     "error message = 'Read-only file system')"), path="/data/ds")
    assert err.errno == errno.EROFS and err.filename == "/data/ds"
    assert hdf5_os_error(RuntimeError("some other failure")) is None
    assert hdf5_os_error(ValueError("No space left on device")) is None


def _write_parts(directory, sizes, seed=0):
    """Part files of windows of the given sizes (random, incompressible factors) and
    their specs, as precompute-ld's workers write them."""
    from varfx.store.windows import WindowSpec

    rng = np.random.default_rng(seed)
    parts = directory / "windows.parts"
    parts.mkdir()
    specs, first = [], 0
    for i, m in enumerate(sizes):
        core = np.arange(first, first + m)
        first += m
        specs.append(WindowSpec(i, 22, 1000 * i, 1000 * (i + 1), core, core))
        with h5py.File(parts / f"w{i:06d}.h5", "w") as h:
            g = h.create_group("window")
            g.attrs.update(index=i, chrom=22, start=1000 * i, end=1000 * (i + 1), logdet_lambda=0.0, k=m,
                           beta_outside=0.0)
            for key, arr in (("core_idx", core), ("plus_idx", core), ("core_pos", np.arange(m)),
                             ("P", rng.standard_normal((m, m))), ("G", rng.standard_normal((m, m))),
                             ("z", np.zeros(m)), ("eigvals", np.ones(m)), ("ld_score", np.ones(m)),
                             ("ld_score_raw", np.ones(m)), ("beta", np.zeros(m))):
                g.create_dataset(key, data=arr)
    return specs, first


def test_write_windows_on_a_full_disk_is_one_error_and_hdf5_stays_usable(tmp_path, mounts):
    """The merge writes through the guarded writer: a disk that fills up mid-merge is one
    UserError naming windows.h5, no temporary file is left, and the HDF5 library of
    this very process still writes files afterwards (which is why the merge no longer
    needs a child process of its own)."""
    from varfx.errors import UserError
    from varfx.store import h5 as store_h5
    from varfx.store.windows import write_windows

    d = mounts.tmpfs(tmp_path / "full", "2m")
    specs, m = _write_parts(d, [120] * 5)  # ~1.2 MB of parts, as much again merged
    used = sum(p.stat().st_size for p in (d / "windows.parts").iterdir())
    assert 2 * used > 2 * 1024 * 1024 > used, used  # the merge cannot fit, the parts do
    calls = []
    real = store_h5.GuardedFile.check

    def counting(self):
        calls.append(self.error is not None)
        real(self)

    store_h5.GuardedFile.check = counting
    try:
        with pytest.raises(UserError, match="cannot write the window store: no space left on the device") as info:
            write_windows(d, specs, {"window_kb": 1.0}, 1000.0, 0, {"n_variants": m, "sha256": "x"})
    finally:
        store_h5.GuardedFile.check = real
    assert str(d / "windows.h5") in str(info.value) and "\n" not in str(info.value)
    assert True not in calls[:-1], calls  # no window was merged after the failure was seen
    assert sorted(p.name for p in d.iterdir()) == ["windows.parts"]
    with h5py.File(tmp_path / "after.h5", "w") as h:
        h.create_dataset("x", data=np.arange(1000))
    with h5py.File(tmp_path / "after.h5", "r") as h:
        assert h["x"][:].sum() == 999 * 1000 // 2


def test_window_store_link_costs_no_rehash_until_the_dataset_changes(base, tmp_path, monkeypatch):
    """ingest records the content hash in dataset.h5 and precompute-ld the file's size
    and mtime in windows.h5: an open of an unchanged pair hashes nothing.  A copy that
    does not keep the mtime is rehashed (and accepted), an edit of the arrays after
    ingest keeps the stale attribute but is rehashed and refused, and a dataset
    without the attribute (before it was recorded) is rehashed and accepted."""
    from varfx.errors import UserError
    from varfx.store import windows as store_windows
    from varfx.store.dataset import dataset_fingerprint
    from varfx.store.windows import load_windows, open_windows

    d = tmp_path / "ds"
    d.mkdir()
    for name in ("dataset.h5", "windows.h5"):
        shutil.copy2(base["ds"] / name, d / name)  # keeps the mtime: the same file as far as the link goes
    with h5py.File(d / "dataset.h5", "r") as h:
        truth = dataset_fingerprint(h)
        assert h.attrs["content_sha256"] == truth["sha256"]
        assert h.attrs["content_n_variants"] == truth["n_variants"]
    calls = []
    monkeypatch.setattr(store_windows, "dataset_fingerprint", lambda h5: calls.append(1) or dataset_fingerprint(h5))

    def open_and_close():
        open_windows(d)[0].close()

    open_and_close()
    load_windows(d, meta_only=True)
    assert calls == []
    shutil.copy(base["ds"] / "dataset.h5", d / "dataset.h5")  # a new mtime, the same content
    open_and_close()
    assert len(calls) == 1
    edit_h5(d / "dataset.h5", set_value("variants/z", 0, 1.5))
    with h5py.File(d / "dataset.h5", "r") as h:
        assert h.attrs["content_sha256"] == truth["sha256"]  # stale: validate_dataset does not rehash
    with pytest.raises(UserError, match="computed for another dataset.h5 .its .* variants differ"):
        open_and_close()
    assert len(calls) == 2
    shutil.copy2(base["ds"] / "dataset.h5", d / "dataset.h5")
    edit_h5(d / "dataset.h5", lambda h5: (h5.attrs.__delitem__("content_sha256")))
    open_and_close()
    assert len(calls) == 3
