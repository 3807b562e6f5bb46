"""Hand-fused pieces of the transformer prior's training step on a CPU.

Each computes the same function as the plain torch composition it replaces (checked in
tests/test_transformer_kernels.py, values and gradients in float64 and float32); they
exist because, at the prior's shapes, a CPU step was bound by memory traffic rather
than by its FLOPs (docs/benchmarks.md, "The transformer prior on a CPU").  The dropout
masks (:func:`keep_mask`) are this module's own random stream: the same distribution as
``nn.Dropout`` with the rate rounded to a multiple of 2^-16, drawn from torch's generator.
The float32 products of rows go to oneDNN's matrix product where this torch build has it
(:func:`rows_times`; torch's otherwise), which ``torch.utils.flop_counter`` learns to
count from :func:`register_flop_counts`.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _onednn_linear():
    """oneDNN's linear (``torch.ops.mkldnn._linear_pointwise``, the kernel torch's CPU
    compiler calls), or None where this torch build has none, or where it fails or
    disagrees with ``torch.mm`` on a small probe (a private op: a CPU or build where it
    misbehaves falls back to torch's products instead of failing a fit)."""
    global _ONEDNN_LINEAR
    if _ONEDNN_LINEAR is False:
        _ONEDNN_LINEAR = None
        try:
            if torch.backends.mkldnn.is_available():
                op = torch.ops.mkldnn._linear_pointwise
                g = torch.Generator().manual_seed(0)
                x = torch.randn(24, 16, generator=g)
                w = torch.randn(8, 16, generator=g)
                b = torch.randn(8, generator=g)
                if torch.allclose(op(x, w, b, "none", [], ""), torch.addmm(b, x, w.t()), rtol=1e-4, atol=1e-4):
                    _ONEDNN_LINEAR = op
        except (AttributeError, RuntimeError, TypeError):
            pass
    return _ONEDNN_LINEAR


_ONEDNN_LINEAR = False  # not looked up yet


def register_flop_counts():
    """Teach ``torch.utils.flop_counter`` the oneDNN products :func:`rows_times` calls
    (``2 N K M``, as ``mm``'s), which it does not count by itself; benchmarks/fit.py calls
    this before counting a step's FLOPs.  Idempotent."""
    global _FLOPS_REGISTERED
    if _onednn_linear() is None or _FLOPS_REGISTERED:
        return
    from torch.utils.flop_counter import register_flop_formula

    # one formula for both overloads: (x, w, b, attr, scalars, algorithm) and the
    # post-op add's (x, other, w, b, attr)
    @register_flop_formula(torch.ops.mkldnn._linear_pointwise)
    def _linear_flops(x_shape, *args, **kwargs):
        w_shape = args[1] if len(args) == 4 else args[0]
        return 2 * math.prod(x_shape[:-1]) * x_shape[-1] * w_shape[0]

    _FLOPS_REGISTERED = True


_FLOPS_REGISTERED = False


def _by_onednn(x, w):
    """Whether ``x w^T`` goes to oneDNN: float32 on a CPU, both of ``w``'s dimensions
    multiples of 8 (AVX2's width; at 45 channels oneDNN ran 1.1-2x slower than MKL)."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and w.dtype == torch.float32
            and w.shape[0] % 8 == 0 and w.shape[1] % 8 == 0 and _onednn_linear() is not None)


def rows_times(x, w, b=None):
    """``x w^T + b`` for rows ``x (N, K)``, ``w (M, K)``: the network's skinny products
    (N of 16,000-65,000 rows, K and M of 32-192).

    For these, MKL's GEMM (what ``torch.mm`` and ``F.linear`` call on a CPU) ran at
    20-35 GFLOP/s, a third to a half of its 2048 x 2048 rate, and oneDNN's matrix product
    1.3-1.7x faster (docs/benchmarks.md, "Round 7"), so float32 products on a CPU go to
    oneDNN; float64 ones (oneDNN has none), other devices and dimensions go to torch's."""
    if _by_onednn(x, w):
        return _onednn_linear()(x.contiguous(), w.contiguous(), b, "none", [], "")
    return x @ w.t() if b is None else torch.addmm(b, x, w.t())


class _Linear(torch.autograd.Function):
    """``x w^T + b`` on rows ``x (N, K)`` by :func:`rows_times`, forward and input
    gradient; the weight gradient (a reduction over the N rows, where MKL was the faster)
    by ``torch.mm``."""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        return rows_times(x, w, b)

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        g = g.contiguous()
        gx = rows_times(g, w.t()) if ctx.needs_input_grad[0] else None
        gw = g.t() @ x if ctx.needs_input_grad[1] else None
        gb = g.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb


def linear(x, w, b=None):
    """``nn.functional.linear(x, w, b)`` over the last dimension of ``x``, its products by
    :func:`rows_times` (under autocast, torch's own, which casts them)."""
    if torch.is_autocast_enabled(x.device.type):
        return nn.functional.linear(x, w, b)
    x2 = x.reshape(-1, x.shape[-1])
    if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad or (b is not None and b.requires_grad)):
        y = _Linear.apply(x2, w, b)
    else:
        y = rows_times(x2, w, b)
    return y.view(*x.shape[:-1], w.shape[0])


def gelu_residual(x, pointwise):
    """``x + pointwise(gelu(x))`` without its bias, on channels-last ``(B, L, C)``: the add
    is the GEMM's accumulate (``addmm`` with ``x`` as the matrix it adds to), so the sum
    never takes a pass of its own.  The caller adds the bias after the max-pooling, on
    half the positions (a per-channel constant commutes with the maximum)."""
    B, L, C = x.shape
    x2 = x.reshape(B * L, C)
    w = pointwise.weight[:, :, 0]
    if torch.is_grad_enabled() and not torch.is_autocast_enabled(x.device.type):
        return _GeluResidual.apply(x2, w).view(B, L, w.shape[0])
    return torch.addmm(x2, nn.functional.gelu(x2), w.t()).view(B, L, w.shape[0])


class _GeluResidual(torch.autograd.Function):
    """``x + gelu(x) w^T`` on rows ``x (N, C)``.  Its backward writes ``x``'s gradient in
    the buffer of ``gelu(x)``'s: GELU's derivative applied in place and the residual's
    gradient added in place, where autograd wrote a new tensor for each and a third for
    their sum (``x`` is used twice)."""

    @staticmethod
    def forward(ctx, x, w):
        a = nn.functional.gelu(x)
        ctx.save_for_backward(x, w, a)
        if _by_onednn(a, w) and w.shape[0] <= 32:
            # oneDNN's product with the add as its post-op: 1.3-1.4x faster than addmm
            # at 32 channels, 7% slower at 64 (docs/benchmarks.md, "Round 7")
            return _onednn_linear().binary(a, x.contiguous(), w.contiguous(), None, "add")
        return torch.addmm(x, a, w.t())

    @staticmethod
    def backward(ctx, g):
        x, w, a = ctx.saved_tensors
        g = g.contiguous()
        ga = rows_times(g, w.t())
        torch.ops.aten.gelu_backward.grad_input(ga, x, grad_input=ga)  # in place
        return ga.add_(g), g.t() @ a


#: dropout rates are drawn on 16-bit lanes: the rate applied is ``p`` rounded to a
#: multiple of 1/65536 (:func:`drop_rate`), e.g. 6554/65536 = 0.100006 for 0.1
DROP_LANES = 1 << 16


def drop_rate(p):
    """The dropout rate :func:`keep_mask` applies for a requested ``p``: ``round(p 2^16) / 2^16``."""
    return round(float(p) * DROP_LANES) / DROP_LANES


def drop_scale(p):
    """``1 / (1 - q)`` for the applied rate ``q = drop_rate(p)``: the scale that keeps a dropped
    tensor's expectation equal to the tensor (exactly, with the quantised rate)."""
    return 1.0 / (1.0 - drop_rate(p))


def keep_mask(shape, p, like):
    """A dropout keep-mask of ``shape``: 1 with probability ``1 - drop_rate(p)``, else 0,
    independently per element, in ``like``'s dtype and device, from torch's default
    generator (so ``torch.manual_seed`` reproduces it and a checkpointed re-forward,
    which restores the generator's state, draws it again).

    Why not ``bernoulli_``: on a CPU it draws one 64-bit MT19937 word per element (53 bits
    of a double) and was a tenth of a transformer training step.  Here one 64-bit word
    (``random_`` over the full int64 range) gives four 16-bit lanes, each compared with
    the rate's threshold: a quarter of the words, and the comparison writes the mask
    straight in the tensor's dtype (docs/benchmarks.md, "Round 6")."""
    n = math.prod(shape)
    threshold = int(drop_rate(p) * DROP_LANES - DROP_LANES // 2)  # lanes below it are dropped
    mask = torch.empty(n, dtype=like.dtype, device=like.device)
    if like.device.type != "cpu":
        words = torch.empty((n + 3) // 4, dtype=torch.int64, device=like.device).random_(-2 ** 63, None)
        return torch.ge(words.view(torch.int16)[:n], threshold, out=mask).view(shape)
    # On a CPU in pieces of MASK_PIECE lanes: the words of a piece and the comparison's
    # boolean temporary (``ge`` into a float tensor converts one) stay in cache, where a
    # whole mask's were each a pass through memory.  The generator draws the same words
    # in the same order as one call for the whole mask would (one 64-bit draw per word).
    words = torch.empty(MASK_PIECE // 4, dtype=torch.int64)
    for s in range(0, n, MASK_PIECE):
        m = min(MASK_PIECE, n - s)
        w = words[:(m + 3) // 4].random_(-2 ** 63, None)
        torch.ge(w.view(torch.int16)[:m], threshold, out=mask[s:s + m])
    return mask.view(shape)


#: :func:`keep_mask` compares its lanes in pieces of this many on a CPU (1 MiB of float32)
MASK_PIECE = 1 << 18


def dropout(x, p, training):
    """``x`` with each element zeroed with probability ``drop_rate(p)`` and the rest
    scaled by :func:`drop_scale`, in training; ``x`` itself otherwise."""
    if not training or p == 0:
        return x
    return x * keep_mask(x.shape, p, x).mul_(drop_scale(p))


class _MaskedResidual(torch.autograd.Function):
    """``x + mask * z`` in one pass, and in one pass back (``torch.addcmul``'s own
    backward forms ``mask * value`` first: a pass more)."""

    @staticmethod
    def forward(ctx, x, z, mask):
        ctx.save_for_backward(mask)
        return torch.addcmul(x, z, mask)

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        return g, g * mask, None


def residual_dropout(x, z, p, training):
    """``x + dropout(z)`` for a ``z`` the caller has already scaled by :func:`drop_scale`
    (folded into the weights of the product that made it: a tiny tensor, not a pass)."""
    if not training or p == 0:
        return x + z
    return _MaskedResidual.apply(x, z, keep_mask(z.shape, p, z))


def scaled_linear(x, layer, weight_scale=1.0, bias_scale=1.0):
    """``bias_scale * b + x (weight_scale * W)^T`` over the last dimension of ``x`` for the
    ``nn.Linear`` ``layer``: the dropout scales of the input and of the output ride on the
    (small) parameters."""
    if weight_scale == 1.0 and bias_scale == 1.0:
        return linear(x, layer.weight, layer.bias)
    return linear(x, layer.weight * weight_scale, layer.bias * bias_scale)


class _AttentionCore(torch.autograd.Function):
    """``softmax(q k^T / sqrt(d) + bias) * mask`` times ``v`` for ``qkv (B, L, 3, h, dh)``,
    ``bias (h, L, L)``, an optional 0/1 ``mask (B h, L, L)``; returns ``(B h, L, dh)``.

    Forward and backward by hand so that: ``q``, ``k`` and ``v`` are made contiguous in
    one copy, and their gradients come back in one buffer of the same layout (three
    strided copies, or autograd's, cost more); the ``1/sqrt(d)`` rides on the products
    (``baddbmm``'s ``alpha``, in the forward and in the backward); and the bias is added to
    the scores in place (under autograd, an in-place add on a view of the product cost
    three copies of the scores in the backward)."""

    @staticmethod
    def forward(ctx, qkv, bias, mask):
        B, L, _, h, dh = qkv.shape
        scale = dh ** -0.5
        # under --amp the products arrive in bfloat16: all of it in qkv's dtype, the
        # softmax in float32 (as autocast computes it), and the backward the same way
        with torch.autocast(qkv.device.type, enabled=False):
            t = qkv.permute(2, 0, 3, 1, 4).contiguous()  # (3, B, h, L, dh)
            q, k, v = (t[i].view(B * h, L, dh) for i in range(3))
            s = torch.empty(B * h, L, L, dtype=qkv.dtype, device=qkv.device)
            torch.baddbmm(s, q, k.transpose(1, 2), beta=0, alpha=scale, out=s)
            s.view(B, h, L, L).add_(bias.to(s.dtype))
            if s.dtype in (torch.float16, torch.bfloat16):
                p = torch.softmax(s, dim=-1, dtype=torch.float32).to(s.dtype)
            else:
                p = torch.softmax(s, dim=-1)
            del s
            pd = p if mask is None else p * mask
            ctx.save_for_backward(t, p, pd, mask)
            ctx.scale, ctx.bias_dtype = scale, bias.dtype
            return torch.bmm(pd, v)

    @staticmethod
    def backward(ctx, gy):
        t, p, pd, mask = ctx.saved_tensors
        _, B, h, L, dh = t.shape
        q, k, v = (t[i].view(B * h, L, dh) for i in range(3))
        gy = gy.to(t.dtype).contiguous()
        g = torch.empty_like(t)  # the gradients of q, k, v in t's layout
        gq, gk, gv = (g[i].view(B * h, L, dh) for i in range(3))
        g_pd = torch.bmm(gy, v.transpose(1, 2))
        torch.bmm(pd.transpose(1, 2), gy, out=gv)
        if mask is not None:
            g_pd.mul_(mask)
        g_s = torch._softmax_backward_data(g_pd, p, -1, p.dtype)
        del g_pd
        torch.baddbmm(gq, g_s, k, beta=0, alpha=ctx.scale, out=gq)
        torch.baddbmm(gk, g_s.transpose(1, 2), q, beta=0, alpha=ctx.scale, out=gk)
        g_bias = g_s.view(B, h, L, L).sum(0).to(ctx.bias_dtype)
        return g.permute(1, 3, 0, 2, 4), g_bias, None


def attention(qkv, bias, heads, dropout, training, out, out_scale=1.0):
    """Multi-head attention with an additive bias per head followed by its output
    projection: ``qkv (B, L, 3 D) -> out(y) (B, L, D)`` with ``y = softmax(q k^T / sqrt(d)
    + bias)`` (dropout on the probabilities in training) times ``v``, as
    ``scaled_dot_product_attention`` and ``out`` compute it, then times ``out_scale``.
    By hand because on a CPU with a learnt bias that function took its reference path,
    whose guard against rows of ``-inf`` (three more passes over the scores) and separate
    scalings of ``q`` and ``k`` cost as much as the products (:class:`_AttentionCore`).
    The dropout's mask is :func:`keep_mask` on the ``(B, heads, L, L)`` probabilities; its
    scale and ``out_scale`` ride on the projection's weights."""
    B, L, D3 = qkv.shape
    D = D3 // 3
    dh = D // heads
    drop = training and dropout > 0
    mask = keep_mask((B * heads, L, L), dropout, qkv) if drop else None
    y = _AttentionCore.apply(qkv.view(B, L, 3, heads, dh), bias, mask)
    y = y.view(B, heads, L, dh).transpose(1, 2).reshape(B, L, D)
    return scaled_linear(y, out, out_scale * (drop_scale(dropout) if drop else 1.0), out_scale)


def keep_freed_memory():
    """Keep the memory a training step frees for the next step (:mod:`varfx.nn.heap`).

    A step allocates and frees its activations (a few hundred MB at the default chunk);
    without this glibc returned most of it at each step's end and the next step faulted
    the same pages in anew (~40,000 faults a step).  With the mmap threshold at 32 MiB
    every activation of a block of :data:`varfx.nn.transformer.CONV_BLOCK` variants comes
    from the heap; up to 1 GiB is kept free at its top."""
    from .heap import keep_freed_memory as keep

    keep(1 << 30)


def _unfold_positions(x, k):
    """``(B, L, C) -> (B L, k C)``: row ``(b, l)`` holds the ``k`` positions ``l - k//2 ..
    l + k//2`` of variant ``b`` (zeros past its ends), position-major, channels inside.

    One zero-padded copy, then one copy of an overlapping view: in the padded
    ``(B, L + k - 1, C)`` tensor a row's ``k C`` values are contiguous, so the unfolded
    matrix is a strided view whose rows overlap, gathered in runs of ``k C`` values
    (``Tensor.unfold`` puts the positions innermost and gathered them element by element,
    2-3x slower)."""
    B, L, C = x.shape
    p = k // 2
    xp = x.new_empty((B, L + 2 * p, C))
    xp[:, :p].zero_()
    xp[:, L + p:].zero_()
    xp[:, p:L + p].copy_(x)
    u = x.new_empty((B, L, k * C))
    u.copy_(xp.as_strided((B, L, k * C), ((L + 2 * p) * C, C, 1)))
    return u.view(B * L, k * C)


class _ConvChannelsLast(torch.autograd.Function):
    """A ``Conv1d`` (odd kernel ``k > 1``, padding ``k // 2``) on channels-last ``(B, L,
    C_in) -> (B, L, C_out)``, with its weight gradient by one GEMM.

    The forward and the input gradient are oneDNN's channels-last kernels (within ~20% of
    the GEMM rate at these shapes).  oneDNN's weight gradient (its ``jit:avx2``
    backward-weights kernel) ran at ~20 GFLOP/s, a third of the GEMM rate, and was the
    largest part of a CPU training step's convolutions; here it is ``gy^T (C_out, B L)``
    times the unfolded input ``(B L, k C_in)`` (:func:`_unfold_positions`), and the bias
    gradient the column sums of ``gy`` (docs/benchmarks.md, "Round 7")."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        k = weight.shape[-1]
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        y = nn.functional.conv2d(x.transpose(1, 2).unsqueeze(2), weight.unsqueeze(2), bias, padding=(0, k // 2))
        return y.squeeze(2).transpose(1, 2)

    @staticmethod
    def backward(ctx, gy):
        x, weight = ctx.saved_tensors
        C_out, C_in, k = weight.shape
        B, L, _ = x.shape
        gx = gw = gb = None
        g2 = gy.reshape(B * L, C_out)
        if ctx.needs_input_grad[0]:
            gx = torch.ops.aten.convolution_backward(
                gy.transpose(1, 2).unsqueeze(2), x.transpose(1, 2).unsqueeze(2), weight.unsqueeze(2), None,
                [1, 1], [0, k // 2], [1, 1], False, [0, 0], 1, [True, False, False])[0]
            gx = gx.squeeze(2).transpose(1, 2)
        if ctx.needs_input_grad[1]:
            gw = (g2.t() @ _unfold_positions(x, k)).view(C_out, k, C_in).transpose(1, 2).contiguous()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g2.sum(0)
        return gx, gw, gb


def conv_channels_last(x, weight, bias):
    """``Conv1d(weight, bias, padding=k//2)`` on channels-last ``(B, L, C_in)``; the
    weight gradient by one GEMM (:class:`_ConvChannelsLast`)."""
    return _ConvChannelsLast.apply(x, weight, bias)


class _FeedForward(torch.autograd.Function):
    """``lin2(mask * gelu(lin1(z)))`` on rows ``z (N, D)``, weights and biases as given
    (the caller folds the dropout scales into ``w2`` and ``b2``); ``mask`` an optional 0/1
    keep-mask of the hidden layer's shape.

    By hand for its backward: the hidden layer's gradient is one buffer, masked and passed
    through GELU's derivative in place, where autograd wrote a new 4-million-element
    tensor for each (the mask's product, GELU's backward)."""

    @staticmethod
    def forward(ctx, z, w1, b1, w2, b2, mask):
        a = rows_times(z, w1, b1)
        h = nn.functional.gelu(a)
        if mask is not None:
            h.mul_(mask)
        ctx.save_for_backward(z, w1, w2, a, h, mask)
        return rows_times(h, w2, b2)

    @staticmethod
    def backward(ctx, g):
        z, w1, w2, a, h, mask = ctx.saved_tensors
        g = g.contiguous()
        gh = rows_times(g, w2.t())
        if mask is not None:
            gh.mul_(mask)
        torch.ops.aten.gelu_backward.grad_input(gh, a, grad_input=gh)  # in place
        return rows_times(gh, w1.t()), gh.t() @ z, gh.sum(0), g.t() @ h, g.sum(0), None


def feed_forward(z, lin1, lin2, p, training, out_scale=1.0):
    """``out_scale * lin2(dropout(gelu(lin1(z))))`` over the last dimension of ``z``: the
    dropout's scale and ``out_scale`` ride on ``lin2``'s weights (:class:`_FeedForward`)."""
    drop = training and p > 0
    s = drop_scale(p) if drop else 1.0
    shape = z.shape
    z2 = z.reshape(-1, shape[-1])
    mask = keep_mask((z2.shape[0], lin1.weight.shape[0]), p, z2) if drop else None
    w2, b2 = lin2.weight, lin2.bias
    if s * out_scale != 1.0 or out_scale != 1.0:
        w2, b2 = w2 * (s * out_scale), b2 * out_scale
    if torch.is_autocast_enabled(z.device.type) or not torch.is_grad_enabled():
        h = nn.functional.gelu(linear(z2, lin1.weight, lin1.bias))
        if mask is not None:
            h = h * mask
        y = linear(h, w2, b2)
    else:
        y = _FeedForward.apply(z2, lin1.weight, lin1.bias, w2, b2, mask)
    return y.view(*shape[:-1], y.shape[-1])


class _CentreAndMean(torch.autograd.Function):
    """``cat([x[:, c], x.mean(1)], 1)`` for ``x (B, L, D)``: the head's inputs.  Its
    backward writes ``x``'s gradient in one pass (the mean's share, the centre's added on
    its row), where autograd zero-filled a tensor for the select, expanded the mean's and
    added the two."""

    @staticmethod
    def forward(ctx, x, c):
        ctx.c, ctx.L, ctx.D = c, x.shape[1], x.shape[2]
        return torch.cat([x[:, c], x.mean(1)], 1)

    @staticmethod
    def backward(ctx, g):
        D, L, c = ctx.D, ctx.L, ctx.c
        gx = (g[:, D:] / L).unsqueeze(1).expand(g.shape[0], L, D).contiguous()
        gx[:, c].add_(g[:, :D])
        return gx, None


def centre_and_mean(x):
    """The token at the centre of ``x (B, L, D)`` and the mean over its ``L`` tokens,
    side by side: ``(B, 2 D)``."""
    return _CentreAndMean.apply(x, x.shape[1] // 2)
