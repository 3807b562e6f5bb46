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
from varfx.nn import transformer_kernels as kern


def reference_embed(mod, window, scalar, masks=None):
    """The network as plain torch modules compute it, channels-first (the layout before
    the kernels), attention by the textbook formula.  ``masks``: the 0/1 dropout masks
    the network drew (recorded by :func:`recording_masks`), applied here as the plain
    definition of dropout does, ``x * mask / (1 - q)``, in the network's order (per layer:
    attention probabilities, the attention's residual, the feed-forward's hidden layer,
    its residual; then the head); ``None``: no dropout (eval mode or rate 0)."""
    F = nn.functional
    masks = iter(masks or [])

    def drop(t, p):
        if not p or not mod.training:
            return t
        m = next(masks, None)
        if m is None:
            return t
        return t * m.view(t.shape) / (1 - kern.drop_rate(p))

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
        dh = D // a.heads
        q, k, v = a.qkv(layer.norm1(x)).view(B, L, 3, a.heads, dh).permute(2, 0, 3, 1, 4)
        pos = torch.arange(L)
        bias = a.rel_bias[:, (pos[None, :] - pos[:, None]) + a.length - 1]
        prob = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh) + bias, dim=-1)
        y = drop(prob, a.dropout) @ v
        x = x + drop(a.out(y.transpose(1, 2).reshape(B, L, D)), layer.drop.p)
        lin1, _, _, lin2 = layer.ffn
        x = x + drop(lin2(drop(F.gelu(lin1(layer.norm2(x))), layer.drop.p)), layer.drop.p)
    x = mod.norm(x)
    parts = [x[:, x.shape[1] // 2], x.mean(1)] + ([scalar] if mod.n_scalar else [])
    lin1, _, d, lin2 = mod.head
    out = lin2(drop(F.gelu(lin1(torch.cat(parts, 1))), d.p)).squeeze(-1)
    assert next(masks, None) is None, "the network drew more masks than the reference used"
    return out


@pytest.fixture
def recording_masks(monkeypatch):
    """The list of every dropout mask the network draws, in order."""
    drawn = []
    draw = kern.keep_mask

    def record(shape, p, like):
        m = draw(shape, p, like)
        drawn.append(m.clone())
        return m

    monkeypatch.setattr(kern, "keep_mask", record)
    return drawn


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
def test_attention_matches_the_formula_and_sdpa(dtype, tol, recording_masks):
    # the hand-written forward and backward (transformer_kernels._AttentionCore) and the
    # output projection carrying the dropout scale, against softmax(q k^T / sqrt(d) +
    # bias) (* mask / (1 - q)) v by autograd, and SDPA without dropout
    g = torch.Generator().manual_seed(12)
    B, L, h, dh = 3, 7, 2, 4
    qkv = torch.randn(B, L, 3 * h * dh, generator=g, dtype=dtype, requires_grad=True)
    bias = torch.randn(h, L, L, generator=g, dtype=dtype, requires_grad=True)
    out = nn.Linear(h * dh, h * dh).to(dtype)
    params = [qkv, bias, out.weight, out.bias]
    for p, training, out_scale in ((0.0, False, 1.0), (0.3, True, 1.7)):
        recording_masks.clear()
        got = kern.attention(qkv, bias, h, p, training, out, out_scale)
        q, k, v = qkv.view(B, L, 3, h, dh).permute(2, 0, 3, 1, 4)
        prob = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh) + bias, dim=-1)
        if training:
            (mask,) = recording_masks
            assert mask.shape == (B * h, L, L) and 0 < mask.mean() < 1
            prob = prob * mask.view(B, h, L, L) / (1 - kern.drop_rate(p))
        else:
            assert not recording_masks
            sdpa = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias[None])
            assert torch.allclose(sdpa, prob @ v, rtol=tol, atol=tol)
        ref = out_scale * out((prob @ v).transpose(1, 2).reshape(B, L, h * dh))
        assert torch.allclose(got, ref, rtol=tol, atol=tol), (p, (got - ref).abs().max())
        up = torch.randn(got.shape, generator=g, dtype=dtype)
        a = torch.autograd.grad((got * up).sum(), params)
        b = torch.autograd.grad((ref * up).sum(), params)
        for u, w in zip(a, b):
            assert torch.allclose(u, w, rtol=tol, atol=tol), (p, (u - w).abs().max())


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


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_training_forward_with_dropout_matches_plain_modules_with_the_same_masks(dtype, tol, recording_masks):
    # one training forward with dropout 0.3 against the plain definition of dropout
    # applied with the masks the network drew: values and every gradient; 2 layers
    mod = _module(32, 1, dtype=dtype, dropout=0.3)
    mod.layers.append(tr._TransformerLayer(16, 4, mod.length, 0.3).to(dtype))
    mod.train()
    g = torch.Generator().manual_seed(15)
    win = torch.randn(6, 32, 3, generator=g, dtype=dtype)
    sc = torch.randn(6, 2, generator=g, dtype=dtype)
    got = mod._embed(win, sc)
    assert len(recording_masks) == 4 * 2 + 1
    want = reference_embed(mod, win, sc, masks=recording_masks)
    assert torch.allclose(got, want, rtol=tol, atol=tol), (got - want).abs().max()
    params = list(mod.parameters())
    ga = torch.autograd.grad(got.sum(), params, allow_unused=True)
    gb = torch.autograd.grad(want.sum(), params, allow_unused=True)
    for (name, _), a, b in zip(mod.named_parameters(), ga, gb):
        if b is None:  # log_scale: not part of the embedding
            continue
        assert torch.allclose(a, b, rtol=tol, atol=tol * 10), (name, (a - b).abs().max())
    # without the masks it is another function: the dropout did something
    assert not torch.allclose(got, reference_embed(mod, win, sc))


def test_training_forward_is_reproducible_from_the_torch_seed_and_eval_draws_nothing():
    mod = _module(32, 1, dtype=torch.float64, dropout=0.3)
    g = torch.Generator().manual_seed(17)
    win = torch.randn(6, 32, 3, generator=g, dtype=torch.float64)
    sc = torch.randn(6, 2, generator=g, dtype=torch.float64)
    mod.train()
    runs = []
    for seed in (18, 18, 19):
        torch.manual_seed(seed)
        runs.append((mod._embed(win, sc).detach(), torch.get_rng_state()))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    assert not torch.allclose(runs[0][0], runs[2][0])
    mod.eval()  # eval: no dropout, no draws, the reference without masks
    state = torch.get_rng_state()
    with torch.no_grad():
        ev = mod._embed(win, sc)
    assert torch.equal(state, torch.get_rng_state())
    assert torch.allclose(ev, reference_embed(mod, win, sc), rtol=1e-10, atol=1e-10)
    mod.train()  # training with rate 0 is the eval function
    for module in mod.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        if isinstance(module, tr._RelativeAttention):
            module.dropout = 0.0
    assert torch.allclose(mod._embed(win, sc), ev, rtol=1e-12, atol=1e-12)


# --- the dropout masks (transformer_kernels.keep_mask) ---

@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 1 / 3, 0.9])
def test_keep_mask_threshold_drops_exactly_the_quantised_rate_of_lane_values(p):
    # a lane is uniform on the 65536 int16 values; exactly round(p 2^16) of them are
    # dropped: the rate is p rounded to a multiple of 2^-16 (0.1 -> 0.100006)
    q = kern.drop_rate(p)
    assert q == round(p * 65536) / 65536 and abs(q - p) <= 2 ** -17
    torch.manual_seed(20)
    n = 1001  # not a multiple of 4 lanes
    m = kern.keep_mask((7, 11, 13), p, torch.empty(0, dtype=torch.float32))
    assert m.shape == (7, 11, 13) and m.dtype == torch.float32 and set(m.unique().tolist()) <= {0.0, 1.0}
    torch.manual_seed(20)
    lanes = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-2 ** 63, None).view(torch.int16)[:n]
    threshold = round(p * 65536) - 32768
    assert torch.equal(m.flatten(), (lanes >= threshold).float())
    every_value = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16)
    assert int((every_value < threshold).sum()) == round(p * 65536)
    assert kern.drop_scale(p) == 1 / (1 - q)


def test_keep_mask_has_its_rate_in_every_lane_and_independent_lanes():
    # 2^22 draws at p = 0.1, fixed seed.  The rate of each of the four 16-bit lanes of a
    # 64-bit word (random_ over the full int64 range: with torch's default int64 range the
    # top lane would never be negative and never drop at p < 0.5) within 5 binomial SDs
    # (2^20 draws a lane: SD 2.9e-4), and the 16 patterns of a word's four lanes, and the
    # 4 patterns of a word's last lane with the next word's first, against independence
    # by a chi-square test: 15 and 3 degrees of freedom, bounds at p-values of about 1e-6
    # (50.0 and 30.7), so a fixed seed that passes is not luck and a dependence of a few
    # per mille between lanes fails.
    torch.manual_seed(21)
    p = 0.1
    q = kern.drop_rate(p)
    n = 1 << 22
    drop = (kern.keep_mask((n,), p, torch.empty(0, dtype=torch.float64)) == 0).view(-1, 4).long()
    sd = math.sqrt(q * (1 - q) / (n // 4))
    for lane in range(4):
        rate = drop[:, lane].double().mean().item()
        assert abs(rate - q) < 5 * sd, (lane, rate, q)
    probs = torch.tensor([q, 1 - q], dtype=torch.float64)

    def chi2(codes, k):
        counts = torch.bincount(codes, minlength=2 ** k).double()
        expect = torch.ones(1, dtype=torch.float64)
        for _ in range(k):
            expect = torch.outer(expect, probs).flatten()
        expect = expect.flip(0) * codes.numel()  # pattern bits: 1 = dropped (prob q)
        return float(((counts - expect) ** 2 / expect).sum())

    word = drop[:, 0] * 8 + drop[:, 1] * 4 + drop[:, 2] * 2 + drop[:, 3]
    assert chi2(word, 4) < 50.0
    across = drop[:-1, 3] * 2 + drop[1:, 0]
    assert chi2(across, 2) < 30.7
    # and a dropped-and-rescaled tensor keeps its expectation: mean of dropout(1)
    ones = torch.ones(n, dtype=torch.float64)
    mean = kern.dropout(ones, p, True).mean().item()
    assert abs(mean - 1) < 5 * math.sqrt(q / (1 - q) / n)
    assert kern.dropout(ones, p, False) is ones


def test_dropout_rate_outside_zero_one_is_a_user_error():
    from varfx.default_plugins.priors import TransformerPrior
    from varfx.errors import UserError

    ctx = {"init_f": 1e-6, "n_features": 2, "n_tracks": 3, "window": 32}
    for p in (1.0, -0.1, 1 - 2 ** -18):  # the last rounds to a rate of 1
        with pytest.raises(UserError, match="dropout"):
            TransformerPrior(width=16, dropout=p).module(ctx)


def test_training_step_under_bfloat16_autocast_with_dropout():
    # --amp on a CPU: the hand-written attention backward and the masks in bfloat16
    mod = _module(32, 1, dtype=torch.float32, dropout=0.2)
    mod.train()
    g = torch.Generator().manual_seed(22)
    batch = {"window": torch.randn(5, 32, 3, generator=g), "features": torch.randn(5, 2, generator=g),
             "freq": torch.full((5,), 0.3, dtype=torch.float64)}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = mod(batch)
    grads = torch.autograd.grad(out.sum(), list(mod.parameters()))
    assert out.dtype == torch.float64 and torch.isfinite(out).all()
    assert all(torch.isfinite(x).all() for x in grads)
    named = dict(zip([n for n, _ in mod.named_parameters()], grads))
    assert all(named[n].dtype == p.dtype for n, p in mod.named_parameters())
    assert float(named["layers.0.attn.rel_bias"].abs().max()) > 0  # through the hand-written backward


def test_keep_freed_memory_is_idempotent_and_harmless():
    kern.keep_freed_memory()
    kern.keep_freed_memory()  # once a process: a second call does nothing
    x = torch.randn(1 << 20)
    assert torch.isfinite(x * 2).all()


# --- round 7: the tower convolutions' weight gradient by one GEMM, the feed-forward and
# the head's inputs by hand, the masks drawn in pieces (docs/benchmarks.md, "Round 7") ---

@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("k, L", [(5, 9), (3, 1), (15, 4), (5, 2)])  # kernels past both ends, L < k
def test_tower_convolution_with_gemm_weight_gradient_matches_conv1d(dtype, tol, k, L):
    g = torch.Generator().manual_seed(30)
    conv = nn.Conv1d(4, 6, k, padding=k // 2).to(dtype)
    x = torch.randn(3, L, 4, generator=g, dtype=dtype, requires_grad=True)  # channels-last
    got = kern.conv_channels_last(x, conv.weight, conv.bias)
    ref = conv(x.transpose(1, 2)).transpose(1, 2)
    assert got.shape == ref.shape and torch.allclose(got, ref, rtol=tol, atol=tol), (got - ref).abs().max()
    up = torch.randn(got.shape, generator=g, dtype=dtype)
    params = [x, conv.weight, conv.bias]
    for u, v in zip(torch.autograd.grad((got * up).sum(), params), torch.autograd.grad((ref * up).sum(), params)):
        assert torch.allclose(u, v, rtol=tol, atol=tol), (u - v).abs().max()
    # the unfolded rows: position-major windows of k, zeros past the variant's ends
    u = kern._unfold_positions(x.detach(), k).view(3, L, k, 4)
    xp = nn.functional.pad(x.detach(), (0, 0, k // 2, k // 2))
    for j in range(k):
        assert torch.equal(u[:, :, j], xp[:, j:j + L])
    # the input gradient is skipped when the input needs none (the weight's still comes)
    x2 = x.detach()
    gw = torch.autograd.grad(kern.conv_channels_last(x2, conv.weight, conv.bias).sum(), conv.weight)[0]
    assert torch.allclose(gw, torch.autograd.grad(conv(x2.transpose(1, 2)).sum(), conv.weight)[0],
                          rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_feed_forward_matches_linear_gelu_dropout_linear(dtype, tol, recording_masks):
    g = torch.Generator().manual_seed(31)
    lin1, lin2 = nn.Linear(6, 12).to(dtype), nn.Linear(12, 6).to(dtype)
    z = torch.randn(4, 5, 6, generator=g, dtype=dtype, requires_grad=True)
    params = [z, lin1.weight, lin1.bias, lin2.weight, lin2.bias]
    for p, training, out_scale in ((0.0, True, 1.0), (0.3, True, 1.4), (0.3, False, 1.0)):
        recording_masks.clear()
        got = kern.feed_forward(z, lin1, lin2, p, training, out_scale)
        h = nn.functional.gelu(lin1(z))
        if training and p:
            (mask,) = recording_masks
            assert mask.shape == (20, 12) and 0 < mask.mean() < 1
            h = h * mask.view(h.shape) / (1 - kern.drop_rate(p))
        else:
            assert not recording_masks
        ref = out_scale * lin2(h)
        assert torch.allclose(got, ref, rtol=tol, atol=tol), (p, (got - ref).abs().max())
        up = torch.randn(got.shape, generator=g, dtype=dtype)
        for u, v in zip(torch.autograd.grad((got * up).sum(), params), torch.autograd.grad((ref * up).sum(), params)):
            assert torch.allclose(u, v, rtol=tol, atol=tol), (p, (u - v).abs().max())


@pytest.mark.parametrize("L", [5, 6, 1])
def test_centre_and_mean_matches_select_and_mean(L):
    g = torch.Generator().manual_seed(32)
    x = torch.randn(3, L, 4, generator=g, dtype=torch.float64, requires_grad=True)
    got = kern.centre_and_mean(x)
    ref = torch.cat([x[:, L // 2], x.mean(1)], 1)
    assert torch.allclose(got, ref, rtol=1e-14, atol=1e-14)
    up = torch.randn(got.shape, generator=g, dtype=torch.float64)
    a, = torch.autograd.grad((got * up).sum(), x)
    b, = torch.autograd.grad((ref * up).sum(), x)
    assert torch.allclose(a, b, rtol=1e-14, atol=1e-14)


def test_keep_mask_in_pieces_draws_the_stream_of_one_draw(monkeypatch):
    # a mask drawn in pieces (transformer_kernels.MASK_PIECE) is, bit for bit, the mask of
    # one random_ call over all its words, and leaves the generator where that call
    # does: the pieces change the memory traffic, not the random stream
    monkeypatch.setattr(kern, "MASK_PIECE", 8)
    for shape, p in (((5, 7), 0.1), ((8,), 0.5), ((3, 3, 3), 0.3), ((1,), 0.2)):
        n = math.prod(shape)
        torch.manual_seed(33)
        m = kern.keep_mask(shape, p, torch.empty(0, dtype=torch.float64))
        after = torch.get_rng_state()
        torch.manual_seed(33)
        lanes = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-2 ** 63, None).view(torch.int16)[:n]
        assert m.dtype == torch.float64 and m.shape == shape
        assert torch.equal(m.flatten(), (lanes >= round(p * 65536) - 32768).double()), shape
        assert torch.equal(after, torch.get_rng_state()), shape


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
@pytest.mark.parametrize("d_in, d_out", [(16, 48), (24, 8), (45, 45)])  # 45: not oneDNN's (not a multiple of 8)
def test_linear_by_rows_times_matches_nn_linear(dtype, tol, d_in, d_out):
    # float32 on a CPU goes to oneDNN's product (forward and input gradient), float64 and
    # other shapes to torch's; both against nn.functional.linear, values and gradients
    g = torch.Generator().manual_seed(34)
    lin = nn.Linear(d_in, d_out).to(dtype)
    x = torch.randn(3, 70, d_in, generator=g, dtype=dtype, requires_grad=True)
    got = kern.linear(x, lin.weight, lin.bias)
    ref = nn.functional.linear(x, lin.weight, lin.bias)
    assert torch.allclose(got, ref, rtol=tol, atol=tol), (got - ref).abs().max()
    up = torch.randn(got.shape, generator=g, dtype=dtype)
    params = [x, lin.weight, lin.bias]
    for u, v in zip(torch.autograd.grad((got * up).sum(), params), torch.autograd.grad((ref * up).sum(), params)):
        assert torch.allclose(u, v, rtol=tol, atol=tol), (u - v).abs().max()
    with torch.no_grad():
        assert torch.allclose(kern.linear(x, lin.weight, None), ref - lin.bias, rtol=tol, atol=tol)
    assert kern._by_onednn(x, lin.weight) == (dtype == torch.float32 and d_out % 8 == 0 and d_in % 8 == 0
                                              and kern._onednn_linear() is not None)


def test_products_fall_back_to_torch_without_onednn(monkeypatch):
    # a torch build without oneDNN's linear: the same values from torch's products
    mod = _module(64, 2, dtype=torch.float32)
    mod.train()
    g = torch.Generator().manual_seed(35)
    win = torch.randn(5, 64, 3, generator=g)
    sc = torch.randn(5, 2, generator=g)
    with_onednn = mod._embed(win, sc)
    monkeypatch.setattr(kern, "_ONEDNN_LINEAR", None)
    assert not kern._by_onednn(win, torch.empty(8, 8))
    assert torch.allclose(mod._embed(win, sc), with_onednn, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("behaviour", ["wrong", "raises"])
def test_onednn_probe_rejects_a_kernel_that_misbehaves(monkeypatch, behaviour):
    # the private op is used only after it agrees with torch.mm on a probe: one that
    # gives other numbers, or fails, leaves the products on torch's kernels
    import types

    def fake(x, w, b, *args):
        if behaviour == "raises":
            raise RuntimeError("no kernel for this CPU")
        return torch.zeros(x.shape[0], w.shape[0])

    monkeypatch.setattr(torch.ops, "mkldnn", types.SimpleNamespace(_linear_pointwise=fake))
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    monkeypatch.setattr(kern, "_ONEDNN_LINEAR", False)  # not looked up yet
    assert kern._onednn_linear() is None
    x, w = torch.randn(16, 8), torch.randn(8, 8)
    assert not kern._by_onednn(x, w)
    assert torch.allclose(kern.linear(x, w), x @ w.t())


def test_flop_counter_counts_the_onednn_products():
    # benchmarks/fit.py's FLOP count of a step must not change with the kernel that does
    # a product: 2 N K M for oneDNN's, as for mm
    from torch.utils.flop_counter import FlopCounterMode

    kern.register_flop_counts()
    kern.register_flop_counts()  # idempotent
    lin = nn.Linear(16, 32)
    pw = nn.Conv1d(16, 16, 1)
    x = torch.randn(40, 16, requires_grad=True)
    for f, want in ((lambda: kern.linear(x, lin.weight, lin.bias), 2 * 40 * 16 * 32),
                    (lambda: kern.gelu_residual(x.view(4, 10, 16), pw), 2 * 40 * 16 * 16)):
        counter = FlopCounterMode(display=False)
        with counter:  # the forward in grad mode: the autograd Functions' oneDNN calls
            f()
        assert counter.get_total_flops() == want
