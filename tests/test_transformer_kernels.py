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


def reference_embed(mod, window, scalar, dropout=False):
    """The network as plain torch modules compute it, channels-first (the layout before
    the kernels).  ``dropout``: draw the attention's and the layers' dropout as the plain
    modules do (``nn.Dropout``, SDPA's ``dropout_p``), in their order; else none (compare
    in eval mode or with dropout 0)."""
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
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[None], dropout_p=a.dropout if dropout else 0.0)
        drop = layer.drop if dropout else (lambda t: t)
        x = x + drop(a.out(y.transpose(1, 2).reshape(B, L, D)))
        x = x + drop(layer.ffn(layer.norm2(x)))
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


# --- the hand-fused pieces of varfx/nn/transformer_kernels.py (issue 11 item 5) ---

from varfx.nn import transformer_kernels as kern  # noqa: E402


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_gelu_residual_matches_add_of_pointwise_conv(dtype, tol):
    g = torch.Generator().manual_seed(11)
    pw = nn.Conv1d(6, 6, 1).to(dtype)
    x = torch.randn(3, 9, 6, generator=g, dtype=dtype, requires_grad=True)
    got = tr._pool(kern.gelu_residual(x, pw)) + pw.bias  # as the blocks use it: bias after pooling
    ref = nn.functional.max_pool1d((x.transpose(1, 2) + pw(nn.functional.gelu(x.transpose(1, 2)))), 2,
                                   ceil_mode=True).transpose(1, 2)
    assert torch.allclose(got, ref, rtol=tol, atol=tol), (got - ref).abs().max()
    up = torch.randn(got.shape, generator=g, dtype=dtype)
    a = torch.autograd.grad((got * up).sum(), [x, pw.weight, pw.bias])
    b = torch.autograd.grad((ref * up).sum(), [x, pw.weight, pw.bias])
    for u, v in zip(a, b):
        assert torch.allclose(u, v, rtol=tol, atol=tol), (u - v).abs().max()


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_attention_matches_sdpa_with_the_same_dropout_draws(dtype, tol):
    # the dropout on the probabilities must draw what scaled_dot_product_attention drew
    # (the same bernoulli_ call on (B, heads, L, L)), or a seeded fit would change
    g = torch.Generator().manual_seed(12)
    B, L, h, dh = 3, 7, 2, 4
    qkv = torch.randn(B, L, 3 * h * dh, generator=g, dtype=dtype, requires_grad=True)
    bias = torch.randn(h, L, L, generator=g, dtype=dtype, requires_grad=True)
    for p, training in ((0.0, False), (0.3, True)):
        torch.manual_seed(13)
        got = kern.attention(qkv, bias, h, p, training)
        after = torch.get_rng_state()
        torch.manual_seed(13)
        q, k, v = qkv.view(B, L, 3, h, dh).permute(2, 0, 3, 1, 4)
        y = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias[None], dropout_p=p if training else 0.0)
        ref = y.transpose(1, 2).reshape(B, L, h * dh)
        assert torch.equal(after, torch.get_rng_state())  # the same number of draws
        assert torch.allclose(got, ref, rtol=tol, atol=tol), (p, (got - ref).abs().max())
        up = torch.randn(got.shape, generator=g, dtype=dtype)
        a = torch.autograd.grad((got * up).sum(), [qkv, bias])
        torch.manual_seed(13)  # the reference's graph holds its mask; redraw nothing
        b = torch.autograd.grad((ref * up).sum(), [qkv, bias])
        for u, w in zip(a, b):
            assert torch.allclose(u, w, rtol=tol, atol=tol), (p, (u - w).abs().max())
    assert not torch.allclose(got, kern.attention(qkv, bias, h, 0.0, False))  # the dropout did something


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_convolutions_in_blocks_match_one_pass(monkeypatch, dtype, tol):
    # the stem and tower run CONV_BLOCK variants at a time; 7 variants in blocks of 3
    # (a short last block) against one pass and against the plain modules
    mod = _module(37, 2, dtype=dtype)
    mod.train()
    g = torch.Generator().manual_seed(14)
    win = torch.randn(7, 37, 3, generator=g, dtype=dtype)
    sc = torch.randn(7, 2, generator=g, dtype=dtype)
    monkeypatch.setattr(tr, "CONV_BLOCK", 3)
    got = mod._embed(win, sc)
    ga = torch.autograd.grad(got.sum(), list(mod.parameters()), allow_unused=True)
    want = reference_embed(mod, win, sc)
    gb = torch.autograd.grad(want.sum(), list(mod.parameters()), allow_unused=True)
    assert torch.allclose(got, want, rtol=tol, atol=tol), (got - want).abs().max()
    for (name, _), a, b in zip(mod.named_parameters(), ga, gb):
        if b is None:  # log_scale: not part of the embedding
            assert a is None, name
            continue
        assert torch.allclose(a, b, rtol=tol, atol=tol * 10), (name, (a - b).abs().max())


def test_training_forward_keeps_dropout_stream_of_plain_modules():
    # one seeded training forward of the whole network with dropout draws exactly what the
    # plain modules (nn.Dropout, SDPA's dropout) draw, in the same order: same values
    mod = _module(32, 1, dtype=torch.float64, dropout=0.3)
    mod.train()
    g = torch.Generator().manual_seed(15)
    win = torch.randn(6, 32, 3, generator=g, dtype=torch.float64)
    sc = torch.randn(6, 2, generator=g, dtype=torch.float64)

    torch.manual_seed(16)
    got = mod._embed(win, sc)
    state = torch.get_rng_state()
    torch.manual_seed(16)
    want = reference_embed(mod, win, sc, dropout=True)
    assert torch.equal(state, torch.get_rng_state())
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-10), (got - want).abs().max()


def test_keep_freed_memory_is_idempotent_and_harmless():
    kern.keep_freed_memory()
    kern.keep_freed_memory()  # once a process: a second call does nothing
    x = torch.randn(1 << 20)
    assert torch.isfinite(x * 2).all()
