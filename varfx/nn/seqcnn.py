"""A Basenji-style residual CNN over the DNA around each variant (MIFM's instance model).

Input: ``batch["sequence"]``, ``(M, S)`` uint8 base codes (0-3 = A, C, G, T; 4 = N, other
codes, outside the chromosome) with the variant at offset ``S // 2``, where
``S = window + 2 * max_shift + 1`` (:func:`stored_length`).  ``S`` is odd on purpose: the
variant is then the fixed point of the reverse complement (offset ``i -> S - 1 - i``), so
the variant token and the allele written at the centre land on the variant in both
strands, and "score of a sequence = score of its reverse complement" holds exactly.

Per variant:

1. augmentation (training only): the reverse complement with probability 1/2 (``rc``),
   then a crop of ``window`` bases starting at a random offset in ``[0, 2 * max_shift]``
   (the variant moves up to ``max_shift`` bases from the window's centre); in eval the
   crop is centred (the variant at offset ``window // 2``) and with ``rc`` the output is
   the mean of the forward and reverse-complement outputs;
2. one-hot A, C, G, T (N is all zero) and, with ``variant_token``, a fifth channel that is
   1 at the variant's position; with ``allele_aware`` the variant's alternative allele
   (``batch["alt"]``, 4 = unknown: the reference base is kept) replaces the reference base
   at the variant before anything else, so the score depends on the allele;
3. a stem convolution (kernel 15) with a residual pointwise block, max-pool 2;
4. ``tower`` blocks: BatchNorm, GELU, convolution (kernel 5), a residual pointwise
   block, max-pool 2, widening geometrically from ``width`` to ``~1.94 * width``
   channels (16 -> 19 -> 22 -> 26 -> 31 by default);
5. ``dilated`` residual blocks (kernel 3, dilations 2, 3, 4, ...);
6. a crop to the ``crop`` centre bins, a pointwise convolution to 64 channels, GELU, a
   linear layer over the flattened bins to one number ``h``.

BatchNorm precedes each convolution after the stem (in eval it uses its running
statistics, so a variant's output does not depend on the batch), GELU is the
non-linearity, and the residual branches end in channel dropout.

Randomness (shift, strand, dropout) comes from generators seeded by two buffers, a seed
drawn from torch's global generator when the module is built and a count of training
forwards, not from the global generator: the buffers are in the checkpoint, so a fit
resumed from one draws what the uninterrupted fit would have drawn (the trainer does
not save torch's global random state).

Output: ``log(init_f) + h`` with the last linear layer initialised to zero, so the model
starts at ``log(init_f)`` for every variant: a per-SNP variance for ``full``/``ldsr``
(read as ``log f``), logit 0 for MIL (whose context has ``init_f = 1``).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

#: base code -> its complement (A<->T, C<->G, N->N)
COMPLEMENT = (3, 2, 1, 0, 4)
N_CODE = 4
HEAD_CHANNELS = 64
#: variants per forward chunk in eval (bounds the activation memory of scoring a genome)
EVAL_CHUNK = 4096
#: eval without gradients takes :meth:`SeqCNNModule._eval_forward_fast` (False: always the
#: reference path; for comparisons, benchmarks/seqcnn_speed.py --compare)
FAST_EVAL = True
#: variants per piece of the fast eval forward (both strands: twice as many sequences):
#: pieces whose activations stay in the caches ran fastest (64-128 variants against 256
#: and more, benchmarks/seqcnn_speed.py --compare --pieces)
FAST_PIECE = 128
#: taps per look-up of the fast stem (a table of 5^STEM_GROUP rows per group of taps)
STEM_GROUP = 4
#: the fast path computes the first layers once per genome position over the stretch the
#: windows of a piece cover (with ``batch["locus"]``) when that is at most this fraction of
#: the positions window by window (SeqCNNModule._shared_block_input): measured, sharing
#: paid up to ~150 bases between variants (1.19x at 100, 0.85x at 200); 0.25 shares up
#: to ~100
SHARE_MAX = 0.25
#: share the first tower block too (else only the stem, its residual block and pool)
SHARE_BLOCK = True


def stored_length(window: int, max_shift: int) -> int:
    """Bases the model needs around each variant: the window, room for the shifts on
    either side, and one more so that the length is odd (see the module docstring)."""
    return int(window) + 2 * int(max_shift) + 1


def reverse_complement(codes: torch.Tensor) -> torch.Tensor:
    """``(M, S)`` base codes -> their reverse complements (N stays N)."""
    table = torch.tensor(COMPLEMENT, dtype=codes.dtype, device=codes.device)
    return table[codes.long()].flip(-1)


def one_hot(codes: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """``(M, L)`` base codes -> ``(M, 4, L)`` one-hot A, C, G, T; N (code 4) is all zero."""
    eye = torch.cat([torch.eye(4, dtype=dtype, device=codes.device),
                     torch.zeros(1, 4, dtype=dtype, device=codes.device)])
    return eye[codes.long()].transpose(1, 2)


def tower_channels(width: int, tower: int) -> list[int]:
    """Channels of the stem and each tower block: geometric growth by 1.18 per block, as
    MIFM's 16 -> 19 -> 22 -> 26 -> 31 (the ratio is 31/16 over four blocks)."""
    ratio = (31 / 16) ** (1 / 4)
    return [int(round(width * ratio ** i)) for i in range(tower + 1)]


class _ChannelDropout(nn.Module):
    """Zero whole channels of a variant with probability ``p`` in training (scaled by
    ``1 / (1 - p)``), drawing from :attr:`generator` (set by :class:`SeqCNNModule`)."""

    def __init__(self, p):
        super().__init__()
        self.p = float(p)
        self.generator = None

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = torch.rand((x.shape[0], x.shape[1], 1), generator=self.generator, device=x.device) >= self.p
        return x * keep.to(x.dtype) / (1 - self.p)


class _Residual(nn.Module):
    """``x + dropout(conv(gelu(bn(x))))`` with a same-length convolution."""

    def __init__(self, channels, kernel=1, dilation=1, dropout=0.0):
        super().__init__()
        self.norm = nn.BatchNorm1d(channels)
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation,
                              padding=dilation * (kernel - 1) // 2)
        self.drop = _ChannelDropout(dropout)

    def forward(self, x):
        return x + self.drop(self.conv(nn.functional.gelu(self.norm(x))))


class _TowerBlock(nn.Module):
    def __init__(self, c_in, c_out, dropout):
        super().__init__()
        self.norm = nn.BatchNorm1d(c_in)
        self.conv = nn.Conv1d(c_in, c_out, 5, padding=2)
        self.residual = _Residual(c_out, 1, dropout=dropout)
        self.pool = nn.MaxPool1d(2, ceil_mode=True)

    def forward(self, x):
        return self.pool(self.residual(self.conv(nn.functional.gelu(self.norm(x)))))


class SeqCNNModule(nn.Module):
    """The network; options as the ``seqcnn`` prior's (see :mod:`varfx.default_plugins.priors`)."""

    def __init__(self, *, window=512, width=16, tower=4, dilated=2, crop=4, dropout=0.1, max_shift=8,
                 rc=True, variant_token=True, allele_aware=False, init_f=1.0, chunk=1024):
        super().__init__()
        if window < 2 or window % 2:
            raise ValueError(f"window={window}: expected an even number of bases, at least 2")
        if width < 1 or tower < 0 or dilated < 0 or crop < 1 or max_shift < 0:
            raise ValueError("width and crop must be at least 1; tower, dilated and max_shift at least 0")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout}: expected a rate in [0, 1)")
        if chunk < 1:
            raise ValueError(f"chunk={chunk}: expected at least 1 variant")
        self.window, self.max_shift, self.chunk = int(window), int(max_shift), int(chunk)
        self.rc, self.variant_token, self.allele_aware = bool(rc), bool(variant_token), bool(allele_aware)
        chans = tower_channels(width, tower)
        self.stem = nn.Conv1d(4 + self.variant_token, chans[0], 15, padding=7)
        self.stem_residual = _Residual(chans[0], 1, dropout=dropout)
        self.stem_pool = nn.MaxPool1d(2, ceil_mode=True)
        self.tower = nn.Sequential(*[_TowerBlock(chans[i], chans[i + 1], dropout) for i in range(tower)])
        self.dilated = nn.Sequential(*[_Residual(chans[-1], 3, dilation=i + 2, dropout=dropout)
                                       for i in range(dilated)])
        bins = self.window
        for _ in range(tower + 1):
            bins = math.ceil(bins / 2)
        if crop > bins:
            raise ValueError(f"crop={crop}: the tower leaves {bins} bins of a {window}-base window")
        self.bins, self.crop = bins, int(crop)
        self.head_norm = nn.BatchNorm1d(chans[-1])
        self.head_conv = nn.Conv1d(chans[-1], HEAD_CHANNELS, 1)
        self.head = nn.Linear(HEAD_CHANNELS * self.crop, 1)
        with torch.no_grad():
            # the output starts at log(init_f) for every variant
            self.head.weight.zero_()
            self.head.bias.zero_()
        # a buffer, not a parameter: the head's bias learns the level; the buffer keeps the
        # starting point so that a model rebuilt from its checkpoint gives the same output
        self.register_buffer("log_init", torch.tensor(math.log(init_f), dtype=torch.float64))
        # the augmentation's random state (module docstring): a seed and a forward count
        self.register_buffer("aug_seed", torch.randint(0, 2**31 - 1, ()))
        self.register_buffer("draws", torch.zeros((), dtype=torch.int64))
        self._dropouts = [m for m in self.modules() if isinstance(m, _ChannelDropout)]

    @property
    def sequence_length(self) -> int:
        return stored_length(self.window, self.max_shift)

    @property
    def batch_inputs(self) -> tuple[str, ...]:
        """The batch keys the output depends on (besides ``freq``'s dtype): variants with
        equal values of these get equal outputs, so a caller may score them once
        (``score-vcf`` does, for the ALTs of one position when the model ignores the allele)."""
        return ("sequence", "alt") if self.allele_aware else ("sequence",)

    # ------------------------------------------------------------------ input

    def prepare(self, batch: dict, *, augment: bool, flip=None, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(codes (M, window), variant offset (M,))`` after the allele, the reverse
        complement (``flip``: a boolean (M,) mask; random when None and ``augment``) and
        the crop (random when ``augment``, else centred), drawing from ``generator``."""
        seq = self._checked_sequence(batch)
        M, S = seq.shape
        codes = seq.long()
        centre = S // 2
        if self.allele_aware:
            alt = batch["alt"].long()
            known = alt < N_CODE
            codes = codes.clone()
            codes[known, centre] = alt[known]
        if flip is None and augment and self.rc:
            flip = torch.rand(M, generator=generator, device=seq.device) < 0.5
        if flip is not None:
            codes = torch.where(flip[:, None], reverse_complement(codes), codes)
        if augment and self.max_shift:
            start = torch.randint(0, 2 * self.max_shift + 1, (M,), generator=generator, device=seq.device)
        else:
            start = torch.full((M,), self.max_shift, dtype=torch.long, device=seq.device)
        idx = start[:, None] + torch.arange(self.window, device=seq.device)[None, :]
        return codes.gather(1, idx), centre - start

    def encode(self, codes: torch.Tensor, variant_at: torch.Tensor) -> torch.Tensor:
        """``(M, 4 [+1], window)`` network input: one-hot bases and the variant token."""
        x = one_hot(codes, dtype=self.stem.weight.dtype)
        if self.variant_token:
            token = torch.zeros_like(x[:, :1])
            token[torch.arange(len(codes), device=codes.device), 0, variant_at] = 1
            x = torch.cat([x, token], dim=1)
        return x

    # ------------------------------------------------------------------ network

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The head's output ``h`` (M,) for encoded input ``x``."""
        x = self.stem_pool(self.stem_residual(self.stem(x)))
        x = self.dilated(self.tower(x))
        lo = (self.bins - self.crop) // 2
        x = x[:, :, lo:lo + self.crop]
        x = nn.functional.gelu(self.head_conv(nn.functional.gelu(self.head_norm(x))))
        return self.head(x.flatten(1)).squeeze(-1)

    def _generator(self, device):
        """This training forward's generator; counts the forward (the count is a buffer)."""
        gen = torch.Generator(device=device)
        gen.manual_seed((int(self.aug_seed) << 32) + int(self.draws))
        self.draws += 1
        return gen

    def _chunk(self, codes, variant_at, seed):
        """``h`` of one chunk in training; its dropout masks come from ``seed``, so the
        recomputation of a checkpointed chunk draws the same masks."""
        gen = torch.Generator(device=codes.device)
        gen.manual_seed(seed)
        for d in self._dropouts:
            d.generator = gen
        return self.embed(self.encode(codes, variant_at))

    def _train_forward(self, batch: dict) -> torch.Tensor:
        gen = self._generator(batch["sequence"].device)
        codes, at = self.prepare(batch, augment=True, generator=gen)
        base = int(torch.randint(0, 2**62, (1,), generator=gen, device=codes.device))
        M = codes.shape[0]
        if M <= self.chunk:
            return self._chunk(codes, at, base)
        # more variants than a chunk (a full-likelihood step evaluates the union of its
        # windows' variants, ~10^4): chunks are checkpointed, so the activations kept for
        # the backward are one chunk's (~0.6 MB per variant at the default) plus the
        # codes, at the cost of a second forward.  BatchNorm's batch statistics are then
        # per chunk (and its running averages see each chunk twice: the same statistics)
        outs = []
        for i, s in enumerate(range(0, M, self.chunk)):
            c, a = codes[s:s + self.chunk], at[s:s + self.chunk]
            if torch.is_grad_enabled():
                outs.append(checkpoint(self._chunk, c, a, base + i, use_reentrant=False))
            else:
                outs.append(self._chunk(c, a, base + i))
        return torch.cat(outs)

    def _eval_forward_reference(self, batch: dict) -> torch.Tensor:
        """``h`` in eval through the training modules (:meth:`encode`, :meth:`embed`): the
        definition :meth:`_eval_forward_fast` is tested against, and the path taken when
        gradients are wanted in eval."""
        M = batch["sequence"].shape[0]
        out = self.embed(self.encode(*self.prepare(batch, augment=False)))
        if self.rc:
            flip = torch.ones(M, dtype=torch.bool, device=batch["sequence"].device)
            out = 0.5 * (out + self.embed(self.encode(*self.prepare(batch, augment=False, flip=flip))))
        return out

    def _eval_forward(self, batch: dict) -> torch.Tensor:
        if torch.is_grad_enabled() or not FAST_EVAL:
            return self._eval_forward_reference(batch)
        return self._eval_forward_fast(batch)

    # ------------------------------------------------------------------ fast inference
    #
    # The same function as _eval_forward_reference to float32 round-off, computed
    # differently because scoring a genome is this network's eval forward and nothing else
    # (benchmarks/seqcnn_speed.py --compare; docs/benchmarks.md, "score-vcf throughput"):
    # - activations are (N, L, C), channels last: torch's small-channel convolutions run
    #   several times faster on channels-last input than on (N, C, L) (the 16 -> 16
    #   pointwise convolution over 512 bases most of all), and max-pool 2 is then the
    #   maximum of the even and the odd rows;
    # - the stem, a convolution over one-hot bases, is a sum of weight columns: its taps
    #   are grouped in fours (STEM_GROUP), each a table of the 625 sums of four columns (N is a
    #   zero column), looked up per base quadruple (an embedding bag), with the bias and the
    #   variant token in one more table of per-position rows (in eval the variant is always
    #   at offset window // 2, so the token's contribution depends only on the position);
    # - BatchNorm in eval is a per-channel affine map, applied in one pass (addcmul), GELU
    #   in place, the residual sums in place;
    # - both strands are one batch of 2M sequences;
    # - with the variants' loci (score-vcf passes them), the stem and the first tower block
    #   are computed once per genome position over the stretch that overlapping windows
    #   cover, and only where a window's ends or its variant change them, window by window
    #   (_shared_block_input).
    # Only without gradients (in place operations); the modules' weights are read on every
    # call, so a model in training that is evaluated between steps is never stale.

    def _stem_tables(self) -> torch.Tensor:
        """``(G * 5^STEM_GROUP + window, C)``: per group of :data:`STEM_GROUP` taps, the sums of
        one weight column per tap for every tuple of base codes (0-4, N a zero column), then
        the per-position rows (the bias and the variant token's column at that offset)."""
        w = self.stem.weight  # (C, 4 [+1], K)
        C, _, K = w.shape
        pad, g = self.stem.padding[0], STEM_GROUP
        G = -(-K // g)
        cols = torch.zeros(G * g, 5, C, dtype=w.dtype, device=w.device)
        cols[:K, :4] = w[:, :4].permute(2, 1, 0)  # (tap, base, C); taps past K are zero
        cols = cols.view(G, g, 5, C)
        table = cols[:, 0]
        for t in range(1, g):
            # (G, 5^t, C) + (G, 5, C): all tuples one tap longer, the new tap's code last
            table = (table[:, :, None] + cols[:, t, None]).reshape(G, -1, C)
        rows = self.stem.bias[None, :].expand(self.window, C).clone()
        if self.variant_token:
            # position l sees the variant (at window // 2) through tap k = window // 2 - l + pad
            at = self.window // 2
            for k in range(K):
                if 0 <= at - k + pad < self.window:
                    rows[at - k + pad] += w[:, 4, k]
        return torch.cat([table.reshape(-1, C), rows])

    def _stem_fast(self, codes: torch.Tensor, positions=None, tables=None) -> torch.Tensor:
        """The stem's output ``(N, window, C)`` for ``(N, window)`` base codes (0-4); with
        ``positions`` (a 1-D index of window offsets) only there: ``(N, len(positions), C)``.
        ``tables``: :meth:`_stem_tables` (computed here when None)."""
        N, W = codes.shape
        g = STEM_GROUP
        G = -(-self.stem.kernel_size[0] // g)
        win = self._stem_tuples(codes)  # (N, W, G)
        rows = torch.arange(G * 5 ** g, G * 5 ** g + W, dtype=torch.int32, device=codes.device)
        if positions is not None:
            win, rows = win[:, positions], rows[positions]
        P = win.shape[1]
        # output position l, group j: the tuple at l + g * j, in group j's part of the table
        idx = torch.empty((N, P, G + 1), dtype=torch.int32, device=codes.device)
        offs = torch.arange(G, dtype=torch.int32, device=codes.device) * 5 ** g
        torch.add(win, offs, out=idx[:, :, :G])
        idx[:, :, G] = rows
        tables = self._stem_tables() if tables is None else tables
        out = nn.functional.embedding_bag(idx.view(N * P, G + 1), tables, mode="sum")
        return out.view(N, P, -1)

    def _stem_tuples(self, codes: torch.Tensor) -> torch.Tensor:
        """``(N, L, G)`` int32 view: at output position l, group j, the base-5 code of the
        :data:`STEM_GROUP` bases that group's taps read (N beyond the ends: zero padding)."""
        N, W = codes.shape
        K, pad, g = self.stem.kernel_size[0], self.stem.padding[0], STEM_GROUP
        G = -(-K // g)
        c = nn.functional.pad(codes.to(torch.int32), (pad, G * g - 1 - pad), value=N_CODE)
        # tup[:, i]: the code of the tuple of g bases starting at padded offset i (base 5)
        span = W + (G - 1) * g
        tup = c[:, :span]
        for t in range(1, g):
            tup = tup * 5 + c[:, t:t + span]
        return tup.as_strided((N, W, G), (tup.stride(0), 1, g))

    @staticmethod
    def _affine_gelu(x: torch.Tensor, norm: nn.BatchNorm1d) -> torch.Tensor:
        """``gelu(norm(x))`` of channels-last ``x`` with the eval BatchNorm as one affine pass."""
        scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
        shift = norm.bias - norm.running_mean * scale
        return nn.functional.gelu(torch.addcmul(shift, x, scale))

    @staticmethod
    def _conv_nlc(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
        """``conv`` of channels-last ``x`` (N, L, C): a 2-D convolution over a (1, L) image in
        torch's channels-last memory format (the same numbers, another loop order)."""
        w = conv.weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        y = nn.functional.conv2d(x.unsqueeze(1).permute(0, 3, 1, 2), w, conv.bias,
                                 padding=(0, conv.padding[0]), dilation=(1, conv.dilation[0]))
        return y.permute(0, 2, 3, 1).reshape(x.shape[0], x.shape[1], -1)

    def _residual_nlc(self, x: torch.Tensor, block: _Residual) -> torch.Tensor:
        return x.add_(self._conv_nlc(self._affine_gelu(x, block.norm), block.conv))

    @staticmethod
    def _pool_nlc(x: torch.Tensor) -> torch.Tensor:
        """MaxPool1d(2, ceil_mode=True) over the rows of channels-last ``x``."""
        if x.shape[1] % 2:
            # the last, unpaired row is its own maximum (ceil mode)
            x = nn.functional.pad(x, (0, 0, 0, 1), value=-math.inf)
        return torch.maximum(x[:, 0::2], x[:, 1::2])

    @staticmethod
    def _conv_rows(x: torch.Tensor, conv: nn.Conv1d, stride: int) -> torch.Tensor:
        """``conv`` over the rows of ``x`` (L, C) whose neighbours are ``stride`` rows apart
        (zero beyond the ends), as one matrix product: a convolution of every tape length
        would keep one oneDNN primitive each (memory growing with the VCF)."""
        K, dil, pad = conv.kernel_size[0], conv.dilation[0], conv.padding[0]
        L, C = x.shape
        xp = nn.functional.pad(x, (0, 0, stride * pad, stride * pad))
        cols = xp.as_strided((L, K, C), (C, stride * dil * C, 1)).reshape(L, K * C)
        w = conv.weight.permute(0, 2, 1).reshape(conv.out_channels, K * C)
        return torch.addmm(conv.bias, cols, w.t())

    def _dirty_pooled(self) -> torch.Tensor:
        """Offsets (after the stem's pool) where a window's first tower input is not the
        function of the genome around it alone: those whose stem outputs read the window's
        zero padding (within ``padding`` bases of either end) or the variant (the token and,
        with ``allele_aware``, the allele: within ``padding`` bases of ``window // 2``)."""
        W, K, pad = self.window, self.stem.kernel_size[0], self.stem.padding[0]
        right = K - 1 - pad
        spans = [(0, pad), (W - right, W)]
        if self.variant_token or self.allele_aware:
            spans.append((W // 2 - right, W // 2 + pad + 1))
        dirty = torch.zeros(W // 2, dtype=torch.bool)
        for a, b in spans:
            a, b = max(a, 0), min(b, W)
            if b > a:
                dirty[a // 2:(b - 1) // 2 + 1] = True
        return torch.nonzero(dirty).squeeze(1)

    def _shared_block_input(self, seq, locus, fwd, tables):
        """The first layers of the windows ``fwd`` (both strands) of the stored sequences
        ``seq`` at genome coordinates ``locus`` (``(M,)`` integers, the variants': differences
        of coordinates are base offsets, e.g. ``chrom << 32 | pos``), computed once per genome
        position: ``(u, 0)``, the first tower block's input ``gelu(norm(pool(stem_residual(
        stem(x)))))`` (``len(fwd), window // 2, C``), or with :data:`SHARE_BLOCK` ``(x, 1)``,
        the first tower block's output after its pool; None when there is no ``locus``, no
        tower, or too little overlap to pay (:data:`SHARE_MAX`).

        Windows of nearby variants overlap (10^6 records over 5 Mb: ~100 windows cover each
        base), and the stem, its residual block, the pool and the next BatchNorm + GELU are a
        function of the ~15 bases around each position, except where the stem reads a
        window's zero padding or the variant (:meth:`_dirty_pooled`).  So they are computed
        once per genome position over the stretches the stored sequences cover (a "tape":
        one stretch per run of overlapping sequences, both strands), every window's values
        are gathered from it (a window at tape offset ``a`` pools the pairs at
        ``a + 2q, a + 2q + 1``: the pairs at every offset are kept), and the dirty offsets are
        recomputed window by window.  The tape is built from the sequences themselves and
        checked against them: loci whose sequences disagree (not one genome) fall back to
        window by window, with the same result."""
        if locus is None or not len(self.tower) or not self.window >= 4:
            return None
        M, S = seq.shape
        W, ms, dev = self.window, self.max_shift, seq.device
        dirty = self._dirty_pooled().to(dev)
        NS = len(fwd)
        loc = torch.as_tensor(locus, device=dev).to(torch.int64).reshape(-1)
        if len(loc) != M or M == 0:
            return None
        order = torch.argsort(loc, stable=True)
        ls = loc[order]
        new_run = torch.ones(M, dtype=torch.bool, device=dev)
        new_run[1:] = (ls[1:] - ls[:-1]) >= S  # sequences that do not overlap
        run = torch.cumsum(new_run, 0) - 1
        first = torch.nonzero(new_run).squeeze(1)
        last = torch.cat([first[1:] - 1, first.new_tensor([M - 1])])
        length = ls[last] - ls[first] + S
        T = int(length.sum())
        strands = NS // M
        # positions computed: the tape's (per strand) and the dirty ones, against a window
        # each (a tape position costs more than a window's: every offset of the pooled
        # layers is kept; SHARE_MAX is set from the measured crossover)
        if strands * T + NS * 2 * len(dirty) > SHARE_MAX * NS * W:
            return None
        off_sorted = (torch.cumsum(length, 0) - length)[run] + (ls - ls[first][run])
        off = torch.empty_like(off_sorted)
        off[order] = off_sorted
        idx = off[:, None] + torch.arange(S, device=dev)
        # the tape's length rounded up to 2^k or 1.5 * 2^k (N after the last stretch): tensors
        # of every length fragmented the heap, which grew with the VCF (~1.7 MB per 1024
        # variants, measured); a few lengths keep it at its first peak
        k = (T - 1).bit_length()  # 2^k >= T
        T = 3 << (k - 2) if k >= 2 and T <= 3 << (k - 2) else 1 << k
        tape = torch.full((T,), N_CODE, dtype=seq.dtype, device=dev)
        tape[idx] = seq
        if not torch.equal(tape[idx], seq):
            return None  # two sequences disagree where their loci say they overlap
        codes = tape.long()
        starts = off + ms  # the forward window's first base on the tape
        if self.rc:
            # the reverse strand's tape after the forward's: tape offset t read backwards,
            # complemented; the window of the rc strand (_fast_piece) starts at its offset
            # T - 1 - (off + ms + W)
            comp = torch.tensor(COMPLEMENT, dtype=torch.long, device=dev)
            codes = torch.cat([codes, comp[codes].flip(0)])
            starts = torch.cat([starts, 2 * T - 1 - (off + ms + W)])
        # the stem over the tape (zero padding at its ends reaches only dirty offsets of the
        # windows: each run's stretch holds max_shift more bases at either side than any of
        # its windows), then its residual block as a matrix product (one oneDNN primitive
        # per tape length would grow the memory, as pieces of every size did)
        g = STEM_GROUP
        G = -(-self.stem.kernel_size[0] // g)
        L = len(codes)
        bias_row = len(tables)
        ix = torch.empty((L, G + 1), dtype=torch.int32, device=dev)
        torch.add(self._stem_tuples(codes[None])[0], torch.arange(G, dtype=torch.int32, device=dev) * 5 ** g,
                  out=ix[:, :G])
        ix[:, G] = bias_row
        x = nn.functional.embedding_bag(ix, torch.cat([tables, self.stem.bias[None]]), mode="sum")
        block = self.stem_residual
        x.add_(torch.addmm(block.conv.bias, self._affine_gelu(x, block.norm), block.conv.weight[:, :, 0].t()))
        # the pool's pairs at every tape offset, then the first tower block's BatchNorm + GELU
        pairs = self._affine_gelu(torch.maximum(x[:-1], x[1:]), self.tower[0].norm)
        # the dirty offsets, window by window
        pos = torch.stack([2 * dirty, 2 * dirty + 1], 1).reshape(-1)
        d = self._residual_nlc(self._stem_fast(fwd, positions=pos, tables=tables), self.stem_residual)
        du = self._affine_gelu(self._pool_nlc(d), self.tower[0].norm)
        n1 = W // 2
        if not SHARE_BLOCK:
            u = pairs[starts[:, None] + 2 * torch.arange(n1, device=dev)]
            u[:, dirty] = du
            return u, 0
        # the first tower block too (its convolution, residual block and pool), the same way
        # one level down: a window's offset q after the stem's pool is tape offset a + 2q, so
        # the block's convolution over the tape reads every other row, and its pool pairs
        # the rows a + 4r, a + 4r + 2.  Dirty after it: the offsets whose convolution reads
        # a dirty input or the window's zero padding, rounded out to the pool's pairs
        blk = self.tower[0]
        rho = blk.conv.padding[0]
        mark = torch.ones(n1 + 2 * rho, dtype=torch.bool)
        mark[rho:rho + n1] = False
        mark[rho + dirty.cpu()] = True
        hit = mark.unfold(0, 2 * rho + 1, 1).any(1)  # (n1,): the block's output is dirty
        n2 = -(-n1 // 2)
        hit2 = nn.functional.pad(hit, (0, 2 * n2 - n1)).view(n2, 2).any(1)
        dirty2 = torch.nonzero(hit2).squeeze(1)
        outs = torch.stack([2 * dirty2, 2 * dirty2 + 1], 1).reshape(-1)
        outs = outs[outs < n1]
        # each run of dirty outputs with the inputs it reads (clipped at the window's ends,
        # where the convolution's own zero padding is the window's), one after the other: a
        # run's outputs read only their own segment
        brk = torch.nonzero(outs[1:] != outs[:-1] + 1).squeeze(1) + 1
        bounds = torch.cat([brk.new_zeros(1), brk, brk.new_tensor([len(outs)])]).tolist()
        ctx, keep, at = [], [], 0
        for a0, b0 in zip(bounds[:-1], bounds[1:]):
            s0, e0 = int(outs[a0]), int(outs[b0 - 1]) + 1
            c0, c1 = max(0, s0 - rho), min(n1, e0 + rho)
            ctx.append(torch.arange(c0, c1))
            keep.append(torch.arange(at + s0 - c0, at + e0 - c0))
            at += c1 - c0
        ctx, keep = torch.cat(ctx).to(dev), torch.cat(keep).to(dev)
        usub = pairs[starts[:, None] + 2 * ctx]
        where = torch.full((n1,), -1, dtype=torch.long, device=dev)
        where[dirty] = torch.arange(len(dirty), device=dev)
        sel = where[ctx]
        usub[:, sel >= 0] = du[:, sel[sel >= 0]]
        y = self._residual_nlc(self._conv_nlc(usub, blk.conv), blk.residual)
        d2 = self._pool_nlc(y[:, keep])
        # over the tape
        y = self._conv_rows(pairs, blk.conv, 2)
        res = blk.residual
        y.add_(torch.addmm(res.conv.bias, self._affine_gelu(y, res.norm), res.conv.weight[:, :, 0].t()))
        x2 = torch.maximum(y[:-2], y[2:])
        idx = (starts[:, None] + 4 * torch.arange(n2, device=dev)).clamp_(max=len(x2) - 1)
        x2 = x2[idx]
        x2[:, dirty2] = d2
        return x2, 1

    def _eval_forward_fast(self, batch: dict) -> torch.Tensor:
        M = batch["sequence"].shape[0]
        pad = -M % FAST_PIECE
        if pad:
            # every piece has FAST_PIECE rows (the padding rows repeat the last variant, and
            # are dropped after; a repeat shares all of its window with it, see
            # _shared_block_input): oneDNN keeps a primitive and its scratch memory per
            # input shape, so pieces of every size from 1 to 127 (score-vcf's batches, one
            # per VCF batch) grew its memory with the VCF: 1.7x the peak RSS at 10^6
            # records of that at 10^5
            batch = {k: torch.cat([v, v[-1:].expand(pad, *v.shape[1:])]) for k, v in batch.items()}
        out = torch.cat([self._fast_piece({k: v[a:a + FAST_PIECE] for k, v in batch.items()})
                         for a in range(0, M + pad, FAST_PIECE)]) if M else self._fast_piece(batch)
        return out[:M]

    def _checked_sequence(self, batch: dict) -> torch.Tensor:
        """The batch's ``(M, S)`` base codes, after checking S against the model's length."""
        seq = batch["sequence"]
        S = seq.shape[1]
        if S != self.sequence_length:
            raise ValueError(f"sequence of {S} bases per variant; this model needs {self.sequence_length} "
                             f"(window {self.window} + 2 x max_shift {self.max_shift} + 1)")
        return seq

    def _fast_piece(self, batch: dict) -> torch.Tensor:
        seq = self._checked_sequence(batch)
        M, S = seq.shape
        codes = seq.long()
        centre, ms, W = S // 2, self.max_shift, self.window
        if self.allele_aware:
            alt = batch["alt"].long()
            known = alt < N_CODE
            codes = codes.clone()
            codes[known, centre] = alt[known]
        if M and int(codes.max()) > N_CODE:
            raise ValueError(f"base code {int(codes.max())}: expected 0-4 (A, C, G, T, N)")
        fwd = codes[:, ms:ms + W]
        if self.rc:
            # the centred crop of the reverse complement (prepare with flip): its bases are
            # those at ms + 1 .. ms + W of the stored sequence, complemented, reversed
            comp = torch.tensor(COMPLEMENT, dtype=torch.long, device=seq.device)
            fwd = torch.cat([fwd, comp[codes[:, ms + 1:ms + W + 1]].flip(-1)])
        tables = self._stem_tables()
        # the first tower block's input, computed once per genome position when the
        # batch's windows overlap (batch["locus"]; None: window by window)
        shared = self._shared_block_input(seq, batch.get("locus"), fwd, tables)
        u, done = None, 0
        if shared is None:
            x = self._pool_nlc(self._residual_nlc(self._stem_fast(fwd, tables=tables), self.stem_residual))
        elif shared[1] == 0:
            u = shared[0]  # the first block's input after its BatchNorm + GELU
        else:
            x, done = shared  # after the first `done` tower blocks
        for i, block in enumerate(self.tower):
            if i < done:
                continue
            y = self._conv_nlc(u if i == 0 and u is not None else self._affine_gelu(x, block.norm), block.conv)
            x = self._pool_nlc(self._residual_nlc(y, block.residual))
        for block in self.dilated:
            x = self._residual_nlc(x, block)
        lo = (self.bins - self.crop) // 2
        x = self._affine_gelu(x[:, lo:lo + self.crop], self.head_norm)
        x = nn.functional.gelu(self._conv_nlc(x, self.head_conv))
        # the head reads the bins channel-major, as embed's (N, C, crop).flatten(1)
        out = self.head(x.transpose(1, 2).flatten(1)).squeeze(-1)
        if self.rc:
            out = 0.5 * (out[:M] + out[M:])
        return out

    def forward(self, batch: dict) -> torch.Tensor:
        seq = batch["sequence"]
        ref = batch.get("freq")
        dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float64
        if self.training:
            h = self._train_forward(batch)
        else:
            # no activations are kept in eval: larger chunks than in training
            parts = []
            for s in range(0, seq.shape[0], EVAL_CHUNK):
                parts.append(self._eval_forward({k: v[s:s + EVAL_CHUNK] for k, v in batch.items()
                                                 if torch.is_tensor(v) and v.shape[:1] == seq.shape[:1]}))
            h = torch.cat(parts) if parts else seq.new_zeros(0, dtype=torch.float32)
        # the sum in the caller's dtype (float64): log f ~ -14 would round in float32/bfloat16
        return h.to(dtype) + self.log_init.to(dtype)
