"""Hand-fused pieces of the transformer prior's training step on a CPU.

Each computes the same function as the plain torch composition it replaces (checked in
tests/test_transformer_kernels.py, values and gradients in float64 and float32); they
exist because, at the prior's shapes, a CPU step was bound by memory traffic rather
than by its FLOPs (docs/benchmarks.md, "The transformer prior on a CPU").
"""

from __future__ import annotations

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


def attention(qkv, bias, heads, dropout, training):
    """Multi-head attention with an additive bias per head, ``qkv (B, L, 3 D) -> (B, L, D)``:
    ``softmax(q k^T / sqrt(d) + bias)`` (dropout on the probabilities in training) times
    ``v``, as ``scaled_dot_product_attention`` computes it.  By hand because on a CPU with
    a learnt bias that function took its reference path, whose guard against rows of
    ``-inf`` (three more passes over the scores) and separate scalings of ``q`` and
    ``k`` cost as much as the products; here the scale rides on the copy that makes ``q``
    contiguous, and the bias is added in place.  The dropout is ``nn.functional.dropout``
    on the ``(B, heads, L, L)`` probabilities, as in that path: the same random draws."""
    B, L, D3 = qkv.shape
    D = D3 // 3
    dh = D // heads
    q, k, v = qkv.view(B, L, 3, heads, dh).permute(2, 0, 3, 1, 4)  # (B, h, L, dh) views
    q = (q * dh ** -0.5).reshape(B * heads, L, dh)
    k = k.reshape(B * heads, L, dh)
    v = v.reshape(B * heads, L, dh)
    s = torch.bmm(q, k.transpose(1, 2)).view(B, heads, L, L)
    s = s.add_(bias)  # bmm's backward needs its inputs only: in place is safe
    p = torch.softmax(s, dim=-1)
    if training and dropout > 0:
        p = nn.functional.dropout(p, dropout, True)
    y = torch.bmm(p.view(B * heads, L, L), v)
    return y.view(B, heads, L, dh).transpose(1, 2).reshape(B, L, D)


def keep_freed_memory():
    """Keep the memory a training step frees for the next step (:mod:`varfx.nn.heap`).

    A step allocates and frees its activations (a few hundred MB at the default chunk);
    without this glibc returned most of it at each step's end and the next step faulted
    the same pages in anew (~40,000 faults a step).  With the mmap threshold at 32 MiB
    every activation of a block of :data:`varfx.nn.transformer.CONV_BLOCK` variants comes
    from the heap; up to 1 GiB is kept free at its top."""
    from .heap import keep_freed_memory as keep

    keep(1 << 30)
