"""Hand-fused pieces of the transformer prior's training step on a CPU.

Each computes the same function as the plain torch composition it replaces (checked in
tests/test_transformer_kernels.py, values and gradients in float64 and float32); they
exist because, at the prior's shapes, a CPU step was bound by memory traffic rather
than by its FLOPs (docs/benchmarks.md, "The transformer prior on a CPU").  The dropout
masks (:func:`keep_mask`) are this module's own random stream: the same distribution as
``nn.Dropout`` with the rate rounded to a multiple of 2^-16, drawn from torch's generator.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def gelu_residual(x, pointwise):
    """``x + pointwise(gelu(x))`` without its bias, on channels-last ``(B, L, C)``: the add
    is the GEMM's accumulate (``addmm`` with ``x`` as the matrix it adds to), so the sum
    never takes a pass of its own.  The caller adds the bias after the max-pooling, on
    half the positions (a per-channel constant commutes with the maximum)."""
    B, L, C = x.shape
    x2 = x.reshape(B * L, C)
    w = pointwise.weight[:, :, 0]
    return torch.addmm(x2, nn.functional.gelu(x2), w.t()).view(B, L, w.shape[0])


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
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=like.device).random_(-2 ** 63, None)
    lanes = words.view(torch.int16)[:n].view(shape)  # uniform on [-32768, 32767]
    threshold = drop_rate(p) * DROP_LANES - DROP_LANES // 2  # lanes below it are dropped
    return torch.ge(lanes, int(threshold), out=torch.empty(shape, dtype=like.dtype, device=like.device))


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


def scaled_linear(x, linear, weight_scale=1.0, bias_scale=1.0):
    """``bias_scale * b + x (weight_scale * W)^T`` over the last dimension of ``x``: the
    dropout scales of the input and of the output ride on the (small) parameters."""
    if weight_scale == 1.0 and bias_scale == 1.0:
        return nn.functional.linear(x, linear.weight, linear.bias)
    return nn.functional.linear(x, linear.weight * weight_scale, linear.bias * bias_scale)


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
