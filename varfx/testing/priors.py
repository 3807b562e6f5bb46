"""Conformance tests every prior plugin must pass.

Subclass in a test module (the class name must start with ``Test`` there)::

    from varfx.testing.priors import PriorConformance

    class TestMyPrior(PriorConformance):
        prior_name = "my-prior"
        prior_options = {}

A prior that reads DNA (``Prior.sequence_length() > 0``) gets, besides the stored
features, ``sequence`` ((M, L) uint8 base codes 0-4, the variant at L // 2, a few N) and
``alt`` ((M,) uint8, 4 where unknown) in every batch, as ``variant_batch`` gives it.
"""

from __future__ import annotations

import io

import numpy as np


class PriorConformance:
    prior_name: str = ""
    prior_options: dict = {}
    n_variants = 257
    n_features = 5
    n_tracks = 3
    window = 32

    def _build(self, init_f=1e-5):
        from varfx.plugins import lookup

        cls = lookup("priors", self.prior_name)
        return cls(**self.prior_options).module({"init_f": init_f, "n_features": self.n_features,
                                                  "n_tracks": self.n_tracks, "window": self.window})

    def _sequence_length(self) -> int:
        from varfx.plugins import lookup

        return int(lookup("priors", self.prior_name)(**self.prior_options).sequence_length())

    def _batch(self, dtype="float64", seed=0):
        import torch

        rng = np.random.default_rng(seed)
        freq = rng.uniform(0.01, 0.99, self.n_variants)
        feats = rng.standard_normal((self.n_variants, self.n_features))
        tracks = rng.standard_normal((self.n_variants, self.window, self.n_tracks))
        batch = {"freq": torch.tensor(freq, dtype=getattr(torch, dtype)),
                 "features": torch.tensor(feats, dtype=getattr(torch, dtype)),
                 "window": torch.tensor(tracks, dtype=torch.float16),
                 "index": torch.arange(self.n_variants)}
        L = self._sequence_length()
        if L > 0:
            # 2% N (unknown bases, chromosome ends); alt unknown (4) for a tenth of the variants
            codes = rng.choice(5, size=(self.n_variants, L), p=[0.245, 0.245, 0.245, 0.245, 0.02])
            alt = (codes[:, L // 2] + rng.integers(1, 4, self.n_variants)) % 4
            alt[rng.random(self.n_variants) < 0.1] = 4
            batch["sequence"] = torch.tensor(codes, dtype=torch.uint8)
            batch["alt"] = torch.tensor(alt, dtype=torch.uint8)
        return batch

    def test_sequence_length_declared(self):
        # 0 (reads no DNA) or the bases it reads; the same for the same options
        L = self._sequence_length()
        assert isinstance(L, int) and L >= 0
        assert L == self._sequence_length()

    def test_output_depends_on_sequence_when_declared(self):
        # a prior that declares DNA reads it: other bases give another output
        import pytest
        import torch

        if self._sequence_length() == 0:
            pytest.skip("the prior reads no DNA")
        module = self._build()
        with torch.no_grad():
            gen = torch.Generator().manual_seed(3)
            for p in module.parameters():
                if p.is_floating_point():
                    p.add_(0.05 * torch.randn(p.shape, generator=gen).to(p.dtype))
        module.eval()
        a, b = self._batch(seed=0), self._batch(seed=0)
        b["sequence"] = self._batch(seed=1)["sequence"]
        with torch.no_grad():
            assert not torch.allclose(module(a), module(b))

    def test_registered_with_metadata(self):
        from varfx.api import Prior
        from varfx.plugins import lookup

        cls = lookup("priors", self.prior_name)
        assert issubclass(cls, Prior)
        assert cls.name == self.prior_name and cls.description
        assert set(cls.describe()["options"]) == set(cls.options)

    def test_output_shape_finite(self):
        log_f = self._build()(self._batch())
        assert log_f.shape == (self.n_variants,)
        assert bool(np.isfinite(log_f.detach().numpy()).all())

    def test_init_scale(self):
        # The module starts near the per-SNP variance it is given (within the frequency factor).
        import torch

        f = torch.exp(self._build(init_f=3e-6)(self._batch())).detach().numpy()
        assert 3e-6 / 1e3 < np.median(f) < 3e-6 * 1e3

    def test_gradients_reach_every_parameter(self):
        module = self._build()
        params = [p for p in module.parameters() if p.requires_grad]
        assert params, "a prior must have trainable parameters"
        module(self._batch()).sum().backward()
        for p in params:
            assert p.grad is not None and bool(np.isfinite(p.grad.numpy()).all())

    def test_batch_order_equivariant(self):
        # f of a variant depends on the variant, not on its place in the batch.
        import torch

        module = self._build().eval()
        batch = self._batch()
        perm = torch.randperm(self.n_variants, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            a = module(batch)[perm]
            b = module({k: v[perm] for k, v in batch.items()})
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-9)

    def test_state_dict_roundtrip_weights_only(self):
        import torch

        m1 = self._build(init_f=2e-5)
        with torch.no_grad():
            for p in m1.parameters():
                p.add_(0.1)
        buf = io.BytesIO()
        torch.save(m1.state_dict(), buf)
        buf.seek(0)
        m2 = self._build(init_f=1e-7)
        m2.load_state_dict(torch.load(buf, weights_only=True))
        with torch.no_grad():
            assert torch.allclose(m1.eval()(self._batch()), m2.eval()(self._batch()))
