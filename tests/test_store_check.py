"""``varfx store check DATASET``: a good store passes; a flipped byte, a deleted window,
an edited dataset.h5, a store without checksums and a non-dataset directory are each
reported (docs/scale.md, "Checking a store")."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

from varfx.store.windows import CHECKSUM_ATTR, window_checksum

from _cli import invoke
from _data import precomputed_subset

OPTS = ["--window-kb", 100, "--flank-kb", 100]


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    """An ingested dataset of ~500 chr22 SNPs with its windows.h5 (small windows)."""
    ds, summary = precomputed_subset(tmp_path_factory.mktemp("storecheck"), 500, OPTS)
    assert summary["windows"] >= 4
    return ds


@pytest.fixture
def ds(ref, tmp_path):
    """A private copy of the dataset to damage (copy2 keeps the mtimes)."""
    d = tmp_path / "ds"
    shutil.copytree(ref, d, copy_function=shutil.copy2)
    return d


def check(ds, *extra):
    r = invoke(["store", "check", ds, "--json", *extra])
    return r.exit_code, json.loads(r.stdout)


def test_good_store_passes(ref):
    code, rep = check(ref)
    assert code == 0, rep
    assert rep["ok"] is True and rep["problems"] == [] and rep["notes"] == []
    assert rep["checksums"] == "verified" and rep["dataset_link"] == "ok" and rep["dataset_h5"] == "ok"
    assert rep["windows"] == rep["plan_windows"] == rep["windows_checked"] >= 4
    r = invoke(["store", "check", ref])
    assert r.exit_code == 0 and r.stdout.splitlines()[0].startswith(f"{ref}: OK")


def test_checksum_is_of_the_stored_arrays(ref):
    # independent of the writer: recompute from the file and from a hand-made digest
    import hashlib

    with h5py.File(ref / "windows.h5", "r") as h5:
        g = h5["windows/000000"]
        assert g.attrs[CHECKSUM_ATTR] == window_checksum({k: g[k][()] for k in g})
        h = hashlib.sha256()
        for k in sorted(g):
            a = g[k][()].astype(g[k].dtype.newbyteorder("<"))
            h.update(f"{k}:{a.dtype.str}:{a.shape}:".encode() + a.tobytes())
        assert h.hexdigest() == g.attrs[CHECKSUM_ATTR]


def test_flipped_byte_names_the_window(ds):
    with h5py.File(ds / "windows.h5", "r+") as h5:
        arr = h5["windows/000002/eigvals"][()]
        arr.view(np.uint8)[0] ^= 1  # lowest mantissa bit: still finite, only the checksum sees it
        assert np.isfinite(arr).all()
        h5["windows/000002/eigvals"][...] = arr
    code, rep = check(ds)
    assert code == 1 and not rep["ok"]
    assert len(rep["problems"]) == 1, rep["problems"]
    assert rep["problems"][0].startswith("window 2 (chr22:") and "checksum mismatch" in rep["problems"][0]
    r = invoke(["store", "check", ds])
    lines = r.stdout.splitlines()
    assert r.exit_code == 1 and lines[0] == f"{ds}: 1 problem" and "window 2 " in lines[1]


def test_deleted_window_group(ds):
    with h5py.File(ds / "windows.h5", "r+") as h5:
        region = f"chr{h5['index/chrom'][1]}:{h5['index/start'][1]}-{h5['index/end'][1]}"
        del h5["windows/000001"]
    code, rep = check(ds)
    assert code == 1
    assert rep["problems"] == [f"window 1 ({region}): no group windows/000001"]


def test_window_missing_from_plan(ds):
    # a store cut short (the last window dropped from both index/ and windows/): the
    # plan of the dataset still has it
    with h5py.File(ds / "windows.h5", "r+") as h5:
        n = int(h5.attrs["n_windows"])
        last = n - 1
        region = f"chr{h5['index/chrom'][last]}:{h5['index/start'][last]}-{h5['index/end'][last]}"
        for k in list(h5["index"]):
            data = h5[f"index/{k}"][:last]
            del h5[f"index/{k}"]
            h5[f"index/{k}"] = data
        del h5[f"windows/{last:06d}"]
        h5.attrs["n_windows"] = last
    code, rep = check(ds)
    assert code == 1
    assert rep["problems"] == [f"window {last} ({region}): in the plan, missing from the store"]


def test_windows_against_another_plan(ds):
    # the store claims flanks of 10 kb: every window now has more flanked variants than
    # the plan of those params, so each is reported as shifted
    with h5py.File(ds / "windows.h5", "r+") as h5:
        params = json.loads(h5.attrs["params"])
        params["flank_kb"] = 10.0
        h5.attrs["params"] = json.dumps(params)
        n = int(h5.attrs["n_windows"])
    code, rep = check(ds)
    assert code == 1 and rep["checksums"] == "verified"
    assert all("shifted" in p for p in rep["problems"]) and len(rep["problems"]) >= n - 1
    assert rep["problems"][0].startswith("window 0 (chr22:")


def test_dataset_modified_after_precompute(ds):
    with h5py.File(ds / "dataset.h5", "r+") as h5:
        h5["variants/z"][3] = h5["variants/z"][3] + 0.5
    code, rep = check(ds)
    assert code == 1 and rep["dataset_link"] == "changed"
    assert any(p.startswith("dataset.h5 changed since the windows were computed") for p in rep["problems"])
    assert rep["checksums"] == "verified"  # the windows themselves are intact


def test_store_without_checksums(ds):
    with h5py.File(ds / "windows.h5", "r+") as h5:
        for name in h5["windows"]:
            del h5["windows"][name].attrs[CHECKSUM_ATTR]
    code, rep = check(ds)
    assert code == 0 and rep["ok"] and rep["checksums"] == "absent"
    assert len(rep["notes"]) == 1 and rep["notes"][0].startswith("no checksums (written by varfx")
    assert "precompute-ld" in rep["notes"][0]
    code, rep = check(ds, "--strict")
    assert code == 1 and rep["problems"][0].startswith("no checksums")


def test_old_store_with_a_non_finite_factor(ds):
    # no checksum to compare: the factors are still checked finite
    with h5py.File(ds / "windows.h5", "r+") as h5:
        for name in h5["windows"]:
            del h5["windows"][name].attrs[CHECKSUM_ATTR]
        h5["windows/000003/z"][0] = np.nan
    code, rep = check(ds)
    assert code == 1 and rep["problems"][0].startswith("window 3 (chr22:")
    assert "non-finite values in z" in rep["problems"][0]


def test_missing_or_garbled_windows_h5(ds):
    (ds / "windows.h5").write_bytes(b"not hdf5")
    code, rep = check(ds)
    assert code == 1 and len(rep["problems"]) == 1 and "not a readable HDF5 file" in rep["problems"][0]
    (ds / "windows.h5").unlink()
    code, rep = check(ds)
    assert code == 1 and rep["problems"] == [f"{ds / 'windows.h5'}: missing (run `varfx precompute-ld {ds}`)"]


def test_not_a_dataset(tmp_path):
    (tmp_path / "x").mkdir()
    r = invoke(["store", "check", tmp_path / "x"])
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "no dataset.h5" in lines[0]
