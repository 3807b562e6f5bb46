"""Window stores sharded per chromosome (``precompute-ld --shards chrom``): the same
windows and fits as one windows.h5, loader workers read it, a killed run keeps its
finished shards, a flipped byte or a deleted shard is named (store check, fit) and a
re-run recomputes exactly what is damaged (docs/scale.md, "Sharded window stores")."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from varfx.stages.precompute import KILL_AFTER_SHARDS_ENV
from varfx.store.windows import load_windows

from _cli import invoke, ok
from _data import without_windows, write_subset

OPTS = ["--window-kb", 100, "--flank-kb", 100]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """~400 real chr22 SNPs, the second half relabelled chromosome 21, ingested once;
    its windows precomputed as one windows.h5 (``none``) and sharded (``chrom``), in
    two dataset directories with the same dataset.h5."""
    tmp = tmp_path_factory.mktemp("shards")
    prefix, ss = write_subset(tmp / "in", 2000, 400)
    bim = open(f"{prefix}.bim").read().splitlines()
    half = len(bim) // 2
    moved = {line.split()[1] for line in bim[half:]}
    with open(f"{prefix}.bim", "w") as fh:
        fh.write("\n".join(("21" + line[line.index("\t"):]) if i >= half else line for i, line in enumerate(bim)) + "\n")
    lines = ss.read_text().splitlines()
    snp = lines[0].split("\t").index("SNP")
    ss.write_text("\n".join([lines[0]] + [("21" + line[line.index("\t"):]) if line.split("\t")[snp] in moved
                                          else line for line in lines[1:]]) + "\n")
    out = {}
    for layout in ("none", "chrom"):
        ds = tmp / layout
        if layout == "none":
            ok(["ingest", "--sumstats", ss, "--ld", prefix, "-o", ds, "--json"])
        else:
            ds.mkdir()
            shutil.copy2(tmp / "none" / "dataset.h5", ds / "dataset.h5")  # copy2: the mtime windows.h5 records
        summary = json.loads(ok(["precompute-ld", ds, *OPTS, "--shards", layout, "--json"]).stdout)
        assert summary["shards"] == layout and summary["windows"] >= 6
        out[layout] = ds
    return out


def copy(ds, tmp_path, name="ds") -> Path:
    d = tmp_path / name
    shutil.copytree(ds, d, copy_function=shutil.copy2)
    return d


def fresh(ds, tmp_path) -> Path:
    return without_windows(ds, tmp_path, "fresh")


def assert_same_windows(a, b):
    wa, aa = load_windows(a)
    wb, ab = load_windows(b)
    assert len(wa) == len(wb) and aa["N"] == ab["N"] and aa["n_ref"] == ab["n_ref"] and aa["params"] == ab["params"]
    for x, y in zip(wa, wb):
        for key, val in vars(x).items():
            other = getattr(y, key)
            if val is None:
                assert other is None, key
            elif hasattr(val, "numpy") or isinstance(val, np.ndarray):
                va, vb = np.asarray(val), np.asarray(other)
                assert va.dtype == vb.dtype and np.array_equal(va, vb), (x.index, key)  # exact: the same bytes
            else:
                assert val == other, (x.index, key)


def window_of(ds, chrom):
    """(shard file, first window index) of a chromosome of a sharded store."""
    path = ds / "windows.shards" / f"chr{chrom}.h5"
    with h5py.File(path, "r") as f:
        return path, int(sorted(f["windows"])[0])


def flip_a_byte(path, i):
    with h5py.File(path, "r+") as f:
        arr = f[f"windows/{i:06d}/eigvals"][()]
        arr.view(np.uint8)[0] ^= 1  # lowest mantissa bit: still finite, only the checksum sees it
        f[f"windows/{i:06d}/eigvals"][...] = arr


def stamp(path):
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, st.st_size


def one_line_error(r):
    """The error line of a failed command (after at most a progress bar line and fit's
    set-up notes, which come before the failure)."""
    lines = [line for line in r.output.strip().splitlines()
             if not line.startswith(("fit ", "Note: "))]
    assert r.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), r.output
    assert "Traceback" not in r.output
    return lines[0]


def test_layout_and_identical_windows(pair):
    ds = pair["chrom"]
    assert sorted(p.name for p in (ds / "windows.shards").iterdir()) == ["chr21.h5", "chr22.h5"]
    with h5py.File(ds / "windows.h5", "r") as h5:
        assert h5.attrs["format_version"] == 3 and h5.attrs["layout"] == "chrom" and "windows" not in h5
        assert list(h5["shards/file"].asstr()[:]) == ["windows.shards/chr21.h5", "windows.shards/chr22.h5"]
        sizes = h5["shards/bytes"][:]
    assert [(ds / "windows.shards" / f"chr{c}.h5").stat().st_size for c in (21, 22)] == list(sizes)
    with h5py.File(pair["none"] / "windows.h5", "r") as h5:
        assert h5.attrs["format_version"] == 2 and "layout" not in h5.attrs
    assert_same_windows(pair["none"], ds)
    # a reader standing in another directory reads the same store (no path is taken
    # relative to the current directory)
    here = os.getcwd()
    try:
        os.chdir(pair["none"])
        assert_same_windows(pair["none"], ds)
    finally:
        os.chdir(here)


def test_fit_constant_is_the_same_on_both_layouts(pair, tmp_path):
    metas = {}
    for layout, ds in pair.items():
        ok(["fit", ds, "--prior", "constant", "--holdout-chroms", "none", "-o", tmp_path / layout])
        metas[layout] = json.loads((tmp_path / layout / "model.json").read_text())
    a, b = metas["none"], metas["chrom"]
    assert a["curve"] == b["curve"] and a["sigma2"] == b["sigma2"]
    ta = torch_state(tmp_path / "none")
    tb = torch_state(tmp_path / "chrom")
    assert ta.keys() == tb.keys() and all(np.array_equal(ta[k], tb[k]) for k in ta)
    # evaluate and score read the store (all of it, or one window at a time) the same way
    ev = {layout: json.loads(ok(["evaluate", tmp_path / layout, ds, "--chroms", "all", "--json"]).stdout)
          for layout, ds in pair.items()}
    assert ev["none"]["loglik"] == ev["chrom"]["loglik"] and np.isfinite(ev["none"]["loglik"])
    for layout, ds in pair.items():
        ok(["score", tmp_path / layout, ds, "--posterior", "-o", tmp_path / f"{layout}.tsv"])
    assert (tmp_path / "none.tsv").read_text() == (tmp_path / "chrom.tsv").read_text()


def torch_state(model):
    """Every tensor of a model directory's checkpoint files, by its path in them."""
    import torch

    files = sorted(model.glob("*.pt"))
    assert files, list(model.iterdir())
    out = {}

    def walk(prefix, obj):
        if torch.is_tensor(obj):
            out[prefix] = obj.numpy()
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(f"{prefix}/{k}", v)

    for f in files:
        walk(f.name, torch.load(f, map_location="cpu", weights_only=False))
    assert out
    return out


def test_fit_with_two_loader_workers_reads_the_shards(pair, tmp_path):
    common = ["--prior", "constant", "--optimizer", "adamw", "--epochs", 2, "--batch-windows", 2,
              "--holdout-chroms", "none"]
    ok(["fit", pair["chrom"], *common, "--loader-workers", 2, "-o", tmp_path / "w2"])
    ok(["fit", pair["none"], *common, "-o", tmp_path / "w0"])
    c2 = [x["train_loss"] for x in json.loads((tmp_path / "w2" / "model.json").read_text())["curve"]]
    c0 = [x["train_loss"] for x in json.loads((tmp_path / "w0" / "model.json").read_text())["curve"]]
    assert c2 == pytest.approx(c0, rel=1e-12)


def test_rerun_is_up_to_date(pair, tmp_path):
    ds = copy(pair["chrom"], tmp_path)
    before = {c: stamp(ds / "windows.shards" / f"chr{c}.h5") for c in (21, 22)}
    r = invoke(["precompute-ld", ds, *OPTS, "--shards", "chrom", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["up_to_date"] and s["shards_written"] == [] and s["repaired_windows"] == []
    assert "every window's checksum verified" in r.stderr
    assert {c: stamp(ds / "windows.shards" / f"chr{c}.h5") for c in (21, 22)} == before


def test_killed_after_the_first_shard_resumes_with_the_missing_one(pair, tmp_path):
    ds = fresh(pair["chrom"], tmp_path)
    r = subprocess.run([sys.executable, "-m", "varfx", "precompute-ld", str(ds), *map(str, OPTS), "--shards", "chrom"],
                       capture_output=True, text=True, timeout=300, env={**os.environ, KILL_AFTER_SHARDS_ENV: "1"})
    assert r.returncode == -9, r.stderr
    first = ds / "windows.shards" / "chr21.h5"
    assert first.is_file() and not (ds / "windows.shards" / "chr22.h5").exists()
    assert not (ds / "windows.h5").exists()  # the index comes last
    kept = stamp(first)
    with h5py.File(first, "r") as f:
        n21 = len(f["windows"])
    time.sleep(1)  # the pool's worker dies with its parent (within 0.5 s at worst): no part lands later
    parts = len(list((ds / "windows.parts").glob("w*.h5")))  # chr22 windows finished before the kill
    r = invoke(["precompute-ld", ds, *OPTS, "--shards", "chrom", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["shards_written"] == [22] and s["resumed_windows"] == n21 + parts and not s["up_to_date"]
    assert stamp(first) == kept  # not rewritten
    assert_same_windows(pair["chrom"], ds)
    assert not (ds / "windows.parts").exists()


def test_flipped_byte_in_a_shard(pair, tmp_path):
    ds = copy(pair["chrom"], tmp_path)
    path, i = window_of(ds, 22)
    other = stamp(ds / "windows.shards" / "chr21.h5")
    flip_a_byte(path, i)
    # store check names the window and its shard
    r = invoke(["store", "check", ds, "--json"])
    rep = json.loads(r.stdout)
    assert r.exit_code == 1 and not rep["ok"] and rep["layout"] == "chrom"
    assert [e["status"] for e in rep["shards"]] == ["ok", "checksum"]
    mism = [p for p in rep["problems"] if "checksum mismatch" in p]
    assert len(mism) == 1 and mism[0].startswith(f"window {i} (chr22:") and str(path) in mism[0]
    # training on it fails with one line naming the shard and the command that repairs it
    line = one_line_error(invoke(["fit", ds, "--prior", "constant", "--holdout-chroms", "none", "-o", tmp_path / "m"]))
    assert str(path) in line and "checksum mismatch" in line and f"varfx precompute-ld {ds} --window-kb 100" in line
    # the same one line when a loader worker process reads the window
    line = one_line_error(invoke(["fit", ds, "--prior", "constant", "--optimizer", "adamw", "--epochs", 1,
                                  "--loader-workers", 2, "--holdout-chroms", "none", "-o", tmp_path / "m2"]))
    assert str(path) in line and "checksum mismatch" in line and "Traceback" not in line
    # the re-run recomputes that window and only it, and rewrites only its shard
    r = invoke(["precompute-ld", ds, *OPTS, "--shards", "chrom", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["repaired_windows"] == [i] and s["shards_written"] == [22] and s["resumed_windows"] == s["windows"] - 1
    assert f"window {i} (chr22:" in r.stderr
    assert stamp(ds / "windows.shards" / "chr21.h5") == other
    assert_same_windows(pair["chrom"], ds)
    assert json.loads(invoke(["store", "check", ds, "--json"]).stdout)["ok"]
    r = invoke(["store", "check", ds])
    assert r.exit_code == 0 and r.stdout.startswith(f"{ds}: OK (") and " in 2 shards" in r.stdout


def test_deleted_shard(pair, tmp_path):
    ds = copy(pair["chrom"], tmp_path)
    gone = ds / "windows.shards" / "chr21.h5"
    gone.unlink()
    line = one_line_error(invoke(["fit", ds, "--prior", "constant", "--holdout-chroms", "none", "-o", tmp_path / "m"]))
    assert str(gone) in line and "missing shard" in line and "varfx precompute-ld" in line
    r = invoke(["store", "check", ds, "--json"])
    rep = json.loads(r.stdout)
    assert r.exit_code == 1 and [e["status"] for e in rep["shards"]] == ["missing", "ok"]
    assert len(rep["problems"]) == 1 and rep["problems"][0].startswith(f"{gone}: missing shard (chromosome 21")
    r = invoke(["precompute-ld", ds, *OPTS, "--shards", "chrom", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    with h5py.File(gone, "r") as f:
        n21 = len(f["windows"])
    assert s["shards_written"] == [21] and s["resumed_windows"] == s["windows"] - n21
    assert_same_windows(pair["chrom"], ds)


def test_unsharded_store_repairs_one_damaged_window(pair, tmp_path):
    ds = copy(pair["none"], tmp_path)
    flip_a_byte(ds / "windows.h5", 3)
    line = one_line_error(invoke(["fit", ds, "--prior", "constant", "--holdout-chroms", "none", "-o", tmp_path / "m"]))
    assert "window 3 (windows/000003): checksum mismatch" in line and str(ds / "windows.h5") in line
    r = invoke(["precompute-ld", ds, *OPTS, "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["repaired_windows"] == [3] and s["resumed_windows"] == s["windows"] - 1
    assert_same_windows(pair["none"], ds)


def test_layout_change_moves_windows_without_recomputing(pair, tmp_path):
    ds = copy(pair["chrom"], tmp_path)
    s = json.loads(ok(["precompute-ld", ds, *OPTS, "--shards", "none", "--json"]).stdout)
    assert s["shards"] == "none" and s["resumed_windows"] == s["windows"] and not (ds / "windows.shards").exists()
    assert_same_windows(pair["none"], ds)
    s = json.loads(ok(["precompute-ld", ds, *OPTS, "--shards", "chrom", "--json"]).stdout)
    assert s["shards"] == "chrom" and s["resumed_windows"] == s["windows"] and s["shards_written"] == [21, 22]
    assert_same_windows(pair["none"], ds)


def test_foreign_or_truncated_shard_is_refused(pair, tmp_path):
    ds = copy(pair["chrom"], tmp_path)
    path = ds / "windows.shards" / "chr21.h5"
    size = path.stat().st_size
    with h5py.File(path, "r+") as f:
        f.attrs["chrom"] = 22  # another chromosome's shard, the same size
    assert path.stat().st_size == size
    line = one_line_error(invoke(["fit", ds, "--prior", "constant", "--holdout-chroms", "none", "-o", tmp_path / "m"]))
    assert line.startswith(f"Error: {path}: not a shard of this window store") and "varfx precompute-ld" in line
    rep = json.loads(invoke(["store", "check", ds, "--json"]).stdout)
    assert [e["status"] for e in rep["shards"]] == ["foreign", "ok"]
    path.write_bytes(path.read_bytes()[: size // 2])  # a partial copy
    line = one_line_error(invoke(["fit", ds, "--prior", "constant", "--holdout-chroms", "none", "-o", tmp_path / "m"]))
    assert line.startswith(f"Error: {path}: damaged shard of the window store ({size // 2} bytes, the index")
    r = invoke(["store", "check", ds, "--json"])
    assert r.exit_code == 1 and [e["status"] for e in json.loads(r.stdout)["shards"]] == ["size", "ok"]


def test_a_large_store_is_checked_by_sizes_unless_verify(pair, tmp_path, monkeypatch):
    from varfx.stages import precompute

    ds = copy(pair["chrom"], tmp_path)
    path, i = window_of(ds, 21)
    flip_a_byte(path, i)
    monkeypatch.setattr(precompute, "VERIFY_FULL_MAX_BYTES", 0)  # every store is "large"
    r = invoke(["precompute-ld", ds, *OPTS, "--shards", "chrom", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["up_to_date"], r.output
    assert "shard sizes checked" in r.stderr and "--verify" in r.stderr
    r = invoke(["precompute-ld", ds, *OPTS, "--shards", "chrom", "--verify", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["repaired_windows"] == [i] and s["shards_written"] == [21]
    assert_same_windows(pair["chrom"], ds)


def test_auto_layout():
    from varfx.store.windows import AUTO_SHARD_MIN_WINDOWS, WindowSpec, resolve_layout

    def specs(chroms, n):
        return [WindowSpec(i, chroms[i % len(chroms)], 0, 1, np.arange(1), np.arange(1)) for i in range(n)]

    assert resolve_layout("auto", specs([1, 2], AUTO_SHARD_MIN_WINDOWS)) == "chrom"
    assert resolve_layout("auto", specs([1, 2], AUTO_SHARD_MIN_WINDOWS - 1)) == "none"
    assert resolve_layout("auto", specs([22], 3 * AUTO_SHARD_MIN_WINDOWS)) == "none"
    assert resolve_layout("chrom", specs([22], 3)) == "chrom"


def test_other_params_recompute_every_shard(pair, tmp_path):
    ds = copy(pair["chrom"], tmp_path)
    # and the parts a killed run of yet other params left: not reused
    (ds / "windows.parts").mkdir()
    (ds / "windows.parts" / "params.json").write_text('{"window_kb": 1.0}')
    (ds / "windows.parts" / "w000000.h5").write_bytes(b"not a part of these params")
    r = invoke(["precompute-ld", ds, "--window-kb", 100, "--flank-kb", 50, "--shards", "chrom", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert not s["up_to_date"] and s["resumed_windows"] == 0 and s["shards_written"] == [21, 22]
    assert s["flank_kb"] == 50 and not (ds / "windows.parts").exists()
    rep = json.loads(invoke(["store", "check", ds, "--json"]).stdout)
    assert rep["ok"], rep["problems"]
    assert load_windows(ds)[1]["params"]["flank_kb"] == 50


def test_loader_opens_only_the_shards_it_reads_and_reopens_after_a_fork(pair, monkeypatch):
    from varfx.store import windows as store_windows
    from varfx.store.windows import MAX_OPEN_SHARDS, WindowBatches

    _, attrs = load_windows(pair["chrom"], meta_only=True)
    chrom = attrs["index"]["chrom"]
    first21, first22 = int(np.flatnonzero(chrom == 21)[0]), int(np.flatnonzero(chrom == 22)[0])
    wb = WindowBatches(pair["chrom"], [[first21], [first22], [first21, first22]])
    assert [w.index for w in wb[0][0]] == [first21]
    assert sorted(wb._h5._shards) == [0]  # chr21's shard only
    wb[1]
    assert sorted(wb._h5._shards) == [0, 1] and MAX_OPEN_SHARDS == 2
    before = wb._h5
    before.pid = -1  # as if this process were a fork of the one that opened it
    assert [w.index for w in wb[2][0]] == [first21, first22]
    assert wb._h5 is not before and wb._h5.pid == os.getpid()
    before.close()
    wb._h5.close()
    # at most MAX_OPEN_SHARDS at a time: the least recently used one is closed
    monkeypatch.setattr(store_windows, "MAX_OPEN_SHARDS", 1)
    wb = WindowBatches(pair["chrom"], [[first21], [first22]])
    wb[0]
    wb[1]
    assert sorted(wb._h5._shards) == [1]
    wb._h5.close()


def test_stray_shard_files_are_warnings_not_problems(pair, tmp_path):
    """A file in windows.shards/ that the index does not list (a copy made by hand, a
    killed writer's temporary file) is named as a warning; alone it leaves the exit 0."""
    ds = copy(pair["chrom"], tmp_path)
    shards = ds / "windows.shards"
    shutil.copy2(shards / "chr22.h5", shards / "chr5.h5")
    (shards / ".chr21.h5.x1y2.tmp").write_bytes(b"\0" * 100)
    r = invoke(["store", "check", ds, "--json"])
    rep = json.loads(r.stdout)
    assert r.exit_code == 0 and rep["ok"] and rep["problems"] == [], rep
    assert rep["stray_shards"] == ["windows.shards/.chr21.h5.x1y2.tmp", "windows.shards/chr5.h5"]
    assert rep["missing_shards"] == [] and [e["status"] for e in rep["shards"]] == ["ok", "ok"]
    assert len(rep["warnings"]) == 2 and rep["warnings"][1].startswith(f"{shards / 'chr5.h5'}: stray file")
    r = invoke(["store", "check", ds])
    lines = r.stdout.splitlines()
    assert r.exit_code == 0 and lines[0].startswith(f"{ds}: OK (") and lines[0].endswith("2 stray files in windows.shards/)")
    assert lines[2].startswith(f"warning: {shards / 'chr5.h5'}: stray file") and len(lines) == 3


def test_missing_and_stray_shards_together(pair, tmp_path):
    """A missing shard is a problem (exit 1) whatever else is there; a stray one next to
    it is still only a warning, and both are in the JSON."""
    ds = copy(pair["chrom"], tmp_path)
    shards = ds / "windows.shards"
    (shards / "chr21.h5").rename(shards / "chr21.h5.bak")  # set aside by hand: not the indexed name
    r = invoke(["store", "check", ds, "--json"])
    rep = json.loads(r.stdout)
    assert r.exit_code == 1 and not rep["ok"]
    assert rep["missing_shards"] == ["windows.shards/chr21.h5"] and rep["stray_shards"] == ["windows.shards/chr21.h5.bak"]
    assert len(rep["problems"]) == 1 and "missing shard" in rep["problems"][0] and len(rep["warnings"]) == 1
    # an unsharded store with a windows.shards/ directory: all of it is stray
    ds = copy(pair["none"], tmp_path, "flat")
    (ds / "windows.shards").mkdir()
    shutil.copy2(pair["chrom"] / "windows.shards" / "chr22.h5", ds / "windows.shards" / "chr22.h5")
    rep = json.loads(invoke(["store", "check", ds, "--json"]).stdout)
    assert rep["ok"] and rep["layout"] == "none" and rep["stray_shards"] == ["windows.shards/chr22.h5"]
