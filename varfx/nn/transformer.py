"""An Enformer-style network over each variant's feature window (DeepWAS's prior).

Per variant: the normalised per-base tracks in a window of ``w`` bp around it
(``features/window``, ``w x T``) go through

1. a convolutional stem (``T -> width/2`` channels, kernel 15) with a residual
   pointwise block and max-pooling by 2;
2. a tower of ``tower`` convolution blocks (kernel 5, residual pointwise, pooling by 2)
   widening geometrically to ``width`` channels;
3. ``depth`` pre-norm transformer layers whose attention adds a learnt bias per head
   and per relative offset (relative-position attention, as Enformer/T5 use instead of
   absolute embeddings);
4. a pointwise head on the token at the variant's position and the mean over the
   window, joined with the variant's scalar features (``features/scalar``).

The output is ``log f`` through a log-space positive link with the usual frequency
factor.  The last layer starts at zero, so training starts from a constant prior at the
data's per-SNP variance.  The forward runs in chunks of ``chunk`` variants; in training
a forward of more than one chunk checkpoints each, so activation memory is bounded by the
chunk, not by the ~10^4 variants of a window.

The convolution stem and tower run channels-last (``(B, positions, channels)``, as the
window is stored) for a CPU (:func:`_conv`, :func:`_pool`, :func:`_group_norm`); they
compute the same function with the same parameters as the plain torch modules
(tests/test_transformer_kernels.py), so stored models load unchanged.  They run on blocks
of :data:`CONV_BLOCK` variants; the residual adds, the attention and the heap a training
step reuses are fused or kept by :mod:`varfx.nn.transformer_kernels`.  Dropout masks are
``transformer_kernels.keep_mask`` (16-bit lanes of torch's generator against the rate:
the rate is ``p`` rounded to a multiple of 2^-16), a quarter of the random words of
``bernoulli_``, with each ``1/(1-p)`` folded into the weights of the product before it;
before issue 11 item 5's round 6 they were torch's ``nn.Dropout`` (another random stream
with the same distribution: docs/benchmarks.md).  Since round 7 the float32 products of
rows (the linear layers, the pointwise convolutions and their input gradients) go to
oneDNN's matrix product on a CPU (``transformer_kernels.rows_times``), the tower
convolutions' weight gradient is one GEMM, and the feed-forward, the GELU residuals and
the head's inputs have backward passes written by hand.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from . import transformer_kernels as kern
from .priors import _FreqFactor

# the convolution stem and tower (which draw no dropout) run on this many variants at a
# time: their activations (up to 256 positions x 32 channels a variant) then stay a few
# MB, which the allocator reuses from step to step and which stay in cache between the
# element-wise passes, where a chunk's 32 MiB tensors were each new pages to fault in
# (docs/benchmarks.md, "The transformer prior on a CPU")
CONV_BLOCK = 256


def _conv(x, conv):
    """``conv`` (an ``nn.Conv1d``) on channels-last activations ``(B, L, C_in) -> (B, L, C_out)``.

    The same arithmetic as ``conv(x.transpose(1, 2)).transpose(1, 2)``, laid out for the
    CPU: with 5 to 64 channels oneDNN's channels-last (NHWC) kernels ran 1.1-1.9x faster
    than its channels-first ones (docs/benchmarks.md, "The transformer prior on a CPU"),
    and a pointwise convolution is one GEMM over all ``B L`` positions."""
    k = conv.kernel_size[0]
    if k == 1:
        return nn.functional.linear(x, conv.weight[:, :, 0], conv.bias)
    if (x.device.type == "cpu" and x.requires_grad and torch.is_grad_enabled()
            and not torch.is_autocast_enabled("cpu")):
        # a tower convolution in training on a CPU: its weight gradient by one GEMM (oneDNN's
        # backward-weights kernel ran at a third of the GEMM rate; docs/benchmarks.md)
        return kern.conv_channels_last(x, conv.weight, conv.bias)
    # (B, C, 1, L) with strides (L C, 1, -, C): a channels-last view, no copy
    y = nn.functional.conv2d(x.transpose(1, 2).unsqueeze(2), conv.weight.unsqueeze(2), conv.bias,
                             padding=(0, k // 2))
    return y.squeeze(2).transpose(1, 2)


def _pool(x):
    """``MaxPool1d(2, ceil_mode=True)`` along the positions of channels-last ``(B, L, C)``:
    oneDNN's channels-last max-pooling over the 4-d view, the same values, indices and
    gradients (ties to the first, NaN kept), where the channels-first call was the 13% of
    a CPU step that the profile named; a pair maximum written by hand with a boolean mask
    was in between (docs/benchmarks.md)."""
    y = nn.functional.max_pool2d(x.transpose(1, 2).unsqueeze(2), (1, 2), ceil_mode=True)
    return y.squeeze(2).transpose(1, 2)


def _group_norm(x, norm):
    """``GroupNorm(1, C)`` (``norm``) on channels-last ``(B, L, C)``: statistics over all
    ``L C`` values of a variant (f_m must not depend on the batch), affine per channel.
    Through the channels-last 4-d view, whose native kernel (forward + backward) ran
    3-4x faster than a layer norm over ``(L, C)`` followed by the affine map."""
    y = nn.functional.group_norm(x.transpose(1, 2).unsqueeze(2), 1, norm.weight, norm.bias, norm.eps)
    return y.squeeze(2).transpose(1, 2)


class _ConvBlock(nn.Module):
    def __init__(self, c_in, c_out, kernel):
        super().__init__()
        self.norm = nn.GroupNorm(1, c_in)  # per variant: f_m must not depend on the batch
        self.conv = nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2)
        self.pointwise = nn.Conv1d(c_out, c_out, 1)
        self.pool = nn.MaxPool1d(2, ceil_mode=True)  # no parameters: kept for the module's layout

    def forward(self, x):  # channels-last (B, L, C)
        x = _conv(nn.functional.gelu(_group_norm(x, self.norm)), self.conv)
        # x + pointwise(gelu(x)), pooled: the pointwise bias after the pooling
        return _pool(kern.gelu_residual(x, self.pointwise)) + self.pointwise.bias


class _RelativeAttention(nn.Module):
    def __init__(self, width, heads, length, dropout):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.rel_bias = nn.Parameter(torch.zeros(heads, 2 * length - 1))
        self.length = length
        self.dropout = dropout

    def forward(self, x, out_scale=1.0):  # (B, L, D) -> out_scale * out(attention)
        L = x.shape[1]
        pos = torch.arange(L, device=x.device)
        rel = (pos[None, :] - pos[:, None]) + self.length - 1  # (L, L) offsets into the table
        bias = self.rel_bias[:, rel].to(x.dtype)  # (h, L, L)
        qkv = kern.linear(x, self.qkv.weight, self.qkv.bias)
        return kern.attention(qkv, bias, self.heads, self.dropout, self.training, self.out, out_scale)


class _TransformerLayer(nn.Module):
    def __init__(self, width, heads, length, dropout):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = _RelativeAttention(width, heads, length, dropout)
        self.norm2 = nn.LayerNorm(width)
        self.ffn = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(2 * width, width))
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        # x + drop(attn(norm1 x)), then x + drop(ffn(norm2 x)), with ffn = lin2 drop gelu
        # lin1.  Dropout by transformer_kernels.keep_mask; each 1/(1-p) rides on the
        # weights of the product before it (tiny tensors, not passes), so a dropout is
        # one multiply by its 0/1 mask, and the residual's is part of the add.
        p = self.drop.p
        drop = self.training and p > 0
        s = kern.drop_scale(p) if drop else 1.0
        x = kern.residual_dropout(x, self.attn(self.norm1(x), s), p, self.training)
        lin1, _, _, lin2 = self.ffn
        return kern.residual_dropout(x, kern.feed_forward(self.norm2(x), lin1, lin2, p, self.training, s), p,
                                     self.training)


class TransformerModule(_FreqFactor):
    """``log f`` from the feature window (and scalar features) of each variant."""

    def __init__(self, n_tracks, window, n_scalar=0, *, width=64, depth=1, tower=2, heads=4,
                 dropout=0.1, chunk=1024, init_f=1e-6, alpha=0.7):
        super().__init__(alpha)
        if width % heads or width % 2:
            raise ValueError("width must be even and a multiple of heads")
        if not 0.0 <= dropout < 1.0 or kern.drop_rate(dropout) >= 1.0:
            # the rate is applied rounded to a multiple of 2^-16 (kern.drop_rate)
            raise ValueError(f"dropout={dropout}: expected a rate in [0, 1), below 1 - 2^-17")
        self.chunk = int(chunk)
        stem = width // 2
        self.stem = nn.Sequential(nn.Conv1d(n_tracks, stem, 15, padding=7))
        self.stem_pointwise = nn.Conv1d(stem, stem, 1)
        self.stem_pool = nn.MaxPool1d(2, ceil_mode=True)
        chans = [int(round(stem * (width / stem) ** (i / max(tower, 1)))) for i in range(tower + 1)]
        chans[-1] = width
        self.tower = nn.Sequential(*[_ConvBlock(chans[i], chans[i + 1], 5) for i in range(tower)])
        if tower == 0:
            self.tower = nn.Sequential(nn.Conv1d(stem, width, 1))
        length = window
        for _ in range(tower + 1):
            length = math.ceil(length / 2)
        self.length = length
        self.layers = nn.ModuleList([_TransformerLayer(width, heads, length, dropout) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        self.head = nn.Sequential(nn.Linear(2 * width + n_scalar, width), nn.GELU(), nn.Dropout(dropout),
                                  nn.Linear(width, 1))
        with torch.no_grad():
            self.head[-1].weight.zero_()
            self.head[-1].bias.zero_()
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_f)))
        self.n_scalar = n_scalar

    def _convolutions(self, window):
        # channels-last throughout: (B, positions, channels), as the window is stored
        x = _conv(window, self.stem[0])
        x = _pool(kern.gelu_residual(x, self.stem_pointwise)) + self.stem_pointwise.bias
        for block in self.tower:
            x = block(x) if isinstance(block, _ConvBlock) else _conv(x, block)  # (B, L, width) at the end
        return x

    def _embed(self, window, scalar):
        if window.shape[0] > CONV_BLOCK:
            x = torch.cat([self._convolutions(window[s:s + CONV_BLOCK])
                           for s in range(0, window.shape[0], CONV_BLOCK)])
        else:
            x = self._convolutions(window)
        for layer in self.layers:
            x = layer(x)
        x = self.norm(x)
        parts = [kern.centre_and_mean(x)]  # the token at the variant and the mean over the window
        if self.n_scalar:
            parts.append(scalar)
        lin1, _, drop, lin2 = self.head
        h = kern.dropout(nn.functional.gelu(lin1(torch.cat(parts, dim=1))), drop.p, self.training)
        return lin2(h).squeeze(-1)

    def forward(self, batch: dict) -> torch.Tensor:
        window = batch["window"]
        if self.training and window.device.type == "cpu":
            kern.keep_freed_memory()
        dtype = self.stem[0].weight.dtype  # the network's dtype (a learnt alpha is float64)
        window = window.to(dtype)
        scalar = batch["features"].to(dtype) if self.n_scalar else window.new_zeros((window.shape[0], 0))
        outs = []
        # Checkpointing bounds the activations of a forward over many chunks by one
        # chunk's.  A forward of one chunk (a step of a few small windows: the trainer
        # calls the prior once a step, then the backward) holds one chunk's activations
        # either way, so its re-forward would cost a third of the step's FLOPs for nothing.
        chunked = self.training and torch.is_grad_enabled() and window.shape[0] > self.chunk
        for s in range(0, window.shape[0], self.chunk):
            w, sc = window[s:s + self.chunk], scalar[s:s + self.chunk]
            if chunked:
                outs.append(checkpoint(self._embed, w, sc, use_reentrant=False))
            else:
                outs.append(self._embed(w, sc))
        out = torch.cat(outs) if outs else window.new_zeros(0)
        freq = batch["freq"]
        # log f ~ -14: the sum is taken in the frequencies' dtype (float64), never in the
        # network's bfloat16 under --amp, which would round it to steps of 1/16
        return out.to(freq.dtype) + self.log_scale.to(freq.dtype) + self.log_factor(freq)
