"""The transformer prior's CPU kernels (channels-last convolutions, group norm and
max-pooling) against the plain torch modules they replace: forward values and gradients
(docs/benchmarks.md, "The transformer prior on a CPU: where a step goes"), and the
checkpointed chunks' re-forward."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from varfx.nn import transformer as tr


def reference_embed(mod, window, scalar):
    """The network as plain torch modules compute it, channels-first (the layout before
    the kernels; no dropout: compare in eval mode or with dropout 0)."""
    F = nn.functional
    x = F.conv1d(window.transpose(1, 2), mod.stem[0].weight, mod.stem[0].bias, padding=7)
    x = F.max_pool1d(x + mod.stem_pointwise(F.gelu(x)), 2, ceil_mode=True)
    for block in mod.tower:
        if isinstance(block, tr._ConvBlock):
            y = block.conv(F.gelu(block.norm(x)))
            x = F.max_pool1d(y + block.pointwise(F.gelu(y)), 2, ceil_mode=True)
        else:
            x = block(x)
    x = x.transpose(1, 2)
    for layer in mod.layers:
        a = layer.attn
        B, L, D = x.shape
        q, k, v = a.qkv(layer.norm1(x)).view(B, L, 3, a.heads, D // a.heads).permute(2, 0, 3, 1, 4)
        pos = torch.arange(L)
        bias = a.rel_bias[:, (pos[None, :] - pos[:, None]) + a.length - 1]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[None])
        x = x + a.out(y.transpose(1, 2).reshape(B, L, D))
        x = x + layer.ffn(layer.norm2(x))
    x = mod.norm(x)
    parts = [x[:, x.shape[1] // 2], x.mean(1)] + ([scalar] if mod.n_scalar else [])
    return mod.head(torch.cat(parts, 1)).squeeze(-1)


def _module(window, tower, dtype=torch.float64, dropout=0.0):
    torch.manual_seed(0)
    mod = tr.TransformerModule(3, window, 2, width=16, depth=1, tower=tower, heads=4, dropout=dropout, chunk=5)
    mod = mod.to(dtype)
    with torch.no_grad():  # the last layer starts at zero: give it weights, so the test sees the network
        mod.head[-1].weight.normal_()
        for p in mod.parameters():  # norms start at 1/0: move them so their affine parts are tested
            if p.dim() == 1 and p.numel() > 1:
                p.add_(0.1 * torch.randn_like(p))
        for layer in mod.layers:
            layer.attn.rel_bias.normal_()
    return mod


# an odd window (ceil-mode pooling pairs the last position with itself) and tower 0
# (a pointwise widening instead of convolution blocks)
@pytest.mark.parametrize("window, tower", [(64, 2), (37, 2), (20, 0)])
def test_network_matches_plain_torch_modules(window, tower):
    mod = _module(window, tower)
    mod.train()  # training mode with dropout 0: the training code paths, deterministically
    g = torch.Generator().manual_seed(1)
    win = torch.randn(7, window, 3, generator=g, dtype=torch.float64)
    sc = torch.randn(7, 2, generator=g, dtype=torch.float64)
    got = mod._embed(win, sc)
    want = reference_embed(mod, win, sc)
    # float64: the two layouts sum in different orders, so agreement to ~1e-12
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-10), (got - want).abs().max()
    w = torch.randn(7, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad((got * w).sum(), list(mod.parameters()), allow_unused=True)
    ref = torch.autograd.grad((want * w).sum(), list(mod.parameters()), allow_unused=True)
    for (name, _), a, b in zip(mod.named_parameters(), grads, ref):
        if b is None:
            assert a is None or not a.abs().max() > 0, name
            continue
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-10), (name, (a - b).abs().max())


def test_eval_forward_unchanged_in_float32():
    # what a stored model computes: float32 as fitted, chunks of 5 variants, eval mode
    mod = _module(64, 2, dtype=torch.float32)
    mod.eval()
    g = torch.Generator().manual_seed(2)
    win = torch.randn(12, 64, 3, generator=g)
    sc = torch.randn(12, 2, generator=g)
    with torch.no_grad():
        got = mod._embed(win, sc)
        want = reference_embed(mod, win, sc)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4), (got - want).abs().max()


def test_pair_max_matches_max_pool_with_ties_and_odd_lengths():
    g = torch.Generator().manual_seed(3)
    for L in (8, 9):
        x = torch.randint(0, 3, (4, L, 5), generator=g).to(torch.float64)  # many ties
        x1 = x.clone().requires_grad_(True)
        x2 = x.clone().requires_grad_(True)
        y1 = tr._pool(x1)
        y2 = nn.functional.max_pool1d(x2.transpose(1, 2), 2, ceil_mode=True).transpose(1, 2)
        assert torch.equal(y1, y2)
        up = torch.randn(y1.shape, generator=g, dtype=torch.float64)
        (y1 * up).sum().backward()
        (y2 * up).sum().backward()
        # the gradient goes to the first of two equal values, as max_pool1d's indices say
        assert torch.equal(x1.grad, x2.grad)
    x = torch.zeros(1, 4, 1)
    x[0, 1, 0] = math.nan
    assert torch.isnan(tr._pool(x)[0, 0, 0])  # a NaN is never pooled away


def test_checkpointed_forward_draws_the_same_dropout_masks():
    # training checkpoints each chunk: the re-forward in the backward must draw the same
    # masks, or the gradient would belong to another network than the loss
    mod = _module(32, 1, dtype=torch.float64, dropout=0.3)
    mod.train()
    g = torch.Generator().manual_seed(5)
    batch = {"window": torch.randn(12, 32, 3, generator=g, dtype=torch.float64),
             "features": torch.randn(12, 2, generator=g, dtype=torch.float64),
             "freq": torch.full((12,), 0.3, dtype=torch.float64)}
    torch.manual_seed(6)
    out = mod(batch)  # three checkpointed chunks of 5, 5, 2
    grads = torch.autograd.grad(out.sum(), list(mod.parameters()))
    torch.manual_seed(6)
    outs = [mod._embed(batch["window"][s:s + 5], batch["features"][s:s + 5]) for s in (0, 5, 10)]
    direct = torch.cat(outs) + mod.log_scale + mod.log_factor(batch["freq"])
    ref = torch.autograd.grad(direct.sum(), list(mod.parameters()))
    assert torch.allclose(out, direct, rtol=0, atol=1e-12)
    for a, b in zip(grads, ref):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)
    torch.manual_seed(7)  # another draw: another network (the masks are not all kept)
    assert not torch.allclose(torch.cat([mod._embed(batch["window"][s:s + 5], batch["features"][s:s + 5])
                                         for s in (0, 5, 10)]), direct - mod.log_scale - mod.log_factor(batch["freq"]))


def test_stored_state_dict_layout_unchanged():
    # checkpoints of the model before the kernels load: the same parameter names and shapes
    mod = tr.TransformerModule(5, 256, 10)
    shapes = {k: tuple(v.shape) for k, v in mod.state_dict().items()}
    assert shapes["stem.0.weight"] == (32, 5, 15) and shapes["stem_pointwise.weight"] == (32, 32, 1)
    assert shapes["tower.0.conv.weight"] == (45, 32, 5) and shapes["tower.1.pointwise.weight"] == (64, 64, 1)
    assert shapes["layers.0.attn.rel_bias"] == (4, 63) and sum(v.numel() for v in mod.parameters()) == 74395
