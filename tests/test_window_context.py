"""The typed window context (issue 8, section 3): what the window store provides besides
the factors reaches objectives as typed fields of ``varfx.api.Window`` (no free-form
``extra`` dict), and objectives cache what they derive in ``objective_cache``."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from _data import mixed_n_dataset
from varfx.api import Window
from varfx.default_plugins.objectives import LDScoreRegression
from varfx.testing.objectives import synthetic_window


@pytest.fixture(scope="module")
def mixed_n_store(tmp_path_factory):
    """~600 chr22 variants whose N alternates between n and 3n, windows precomputed."""
    tmp = tmp_path_factory.mktemp("wctx")
    return mixed_n_dataset(tmp)


def test_store_fields_are_typed_and_match_the_file(mixed_n_store):
    from varfx.store.windows import load_windows

    ds = mixed_n_store
    windows, attrs = load_windows(ds)
    meta, _ = load_windows(ds, meta_only=True)
    assert not hasattr(windows[0], "extra")  # the untyped dict is gone
    with h5py.File(ds / "windows.h5", "r") as h5:
        N, n_ref = float(h5.attrs["N"]), int(h5.attrs["n_ref"])
        assert n_ref > 0  # a PLINK panel: its size is recorded
        for w, m in zip(windows, meta):
            g = h5["windows"][f"{w.index:06d}"]
            k = int(g.attrs["k"])
            assert isinstance(w.N, float) and w.N == N and isinstance(w.n_ref, int) and w.n_ref == n_ref
            assert w.k == k == int(w.z.shape[0])
            assert torch.is_tensor(w.P) and tuple(w.P.shape) == (k, w.n)
            np.testing.assert_array_equal(w.P.numpy(), g["P"][:])
            assert torch.is_tensor(w.beta) and tuple(w.beta.shape) == (w.n,)
            np.testing.assert_array_equal(w.beta.numpy(), g["beta"][:])
            assert isinstance(w.n_scale, np.ndarray)
            np.testing.assert_array_equal(w.n_scale, g["n_scale"][:])
            assert w.objective_cache == {}
            # metadata only: no factors, the stored k, the same scalars
            assert m.G is None and m.z is None and m.P is None and m.beta is None
            assert m.k == k and m.N == N and m.n_ref == n_ref
            np.testing.assert_array_equal(m.n_scale, w.n_scale)


def test_constant_n_has_no_n_scale(tmp_path):
    win, *_ = synthetic_window(seed=1)
    assert win.n_scale is None and win.n_ref == 0 and win.k == int(win.z.shape[0])
    bare = Window(index=0, chrom=1, start=0, end=1, G=None, z=None, eigvals=np.zeros(0), logdet_lambda=0.0,
                  plus_idx=np.arange(3), core_idx=np.arange(3), core_pos=np.arange(3))
    assert bare.k == 0 and bare.N is None and bare.P is None and bare.beta is None


def test_k_that_disagrees_with_z_is_refused():
    win, *_ = synthetic_window(seed=1)
    with pytest.raises(ValueError, match="k = 3"):
        Window(index=0, chrom=1, start=0, end=1, G=win.G, z=win.z, eigvals=win.eigvals,
               logdet_lambda=win.logdet_lambda, plus_idx=win.plus_idx, core_idx=win.core_idx,
               core_pos=win.core_pos, k=3)


def test_ldsr_caches_r2_in_the_objective_cache():
    win, R, core_pos, *_ = synthetic_window(n_ref=500, seed=2)
    obj = LDScoreRegression()
    r2 = obj.r2(win)
    assert win.objective_cache["ldsr_r2"] is r2
    assert obj.r2(win) is r2  # computed once per window
    # the cache is what is read: a poisoned entry is returned as is
    win.objective_cache["ldsr_r2"] = torch.zeros_like(r2)
    assert float(obj.r2(win).abs().sum()) == 0.0
    win.objective_cache.clear()
    np.testing.assert_allclose(obj.r2(win).numpy(), R[core_pos] ** 2, atol=1e-8)


def test_ldsr_reads_n_scale_and_n_ref_fields():
    """The fields change r2 as documented: with n_scale d (whose scaling a real store has
    already put into G), n_ref > 2 corrects r2 to r2 - (d - r2) / (n_ref - 2) and the
    diagonal is d."""
    win, R, core_pos, *_ = synthetic_window(n_ref=500, seed=3)
    d = np.linspace(0.5, 2.0, win.n)
    win.n_scale, win.n_ref = d, 50
    got = LDScoreRegression().r2(win).numpy()
    r2 = R[core_pos] ** 2  # this window's G carries no D^1/2
    want = r2 - (d[:, None] - r2) / 48
    want[np.arange(win.n), core_pos] = d
    np.testing.assert_allclose(got, want, atol=1e-8)


def test_to_device_moves_factors_and_cache():
    """The trainer's move of a loader-read window: G, z, P, beta and the cache's tensors
    go to the device ("meta" stands in for a GPU), n_scale stays numpy."""
    from varfx.train.loop import _to

    win, *_ = synthetic_window(seed=4)
    win.n_scale = np.ones(win.n)
    win.objective_cache["x"] = torch.ones(2)
    win.objective_cache["note"] = "kept"
    moved = _to(win, torch.device("meta"))
    for t in (moved.G, moved.z, moved.P, moved.beta, moved.objective_cache["x"]):
        assert t.device.type == "meta"
    assert isinstance(moved.n_scale, np.ndarray) and moved.objective_cache["note"] == "kept"
