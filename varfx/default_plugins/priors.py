"""Built-in priors.  Torch is imported only when a model is built."""

from __future__ import annotations

import math

from varfx import hookimpl
from varfx.api import Option, Prior
from varfx.features.sources.common import boolean


def alpha_option(value):
    """``--alpha``: a number, or ``learn`` to fit it (starting at 0.7)."""
    if isinstance(value, str) and value.strip().lower() == "learn":
        return "learn"
    return float(value)


def coef_sd_option(value):
    """``-p coef_sd=``: the prior SD of each standardised GLM coefficient; ``0`` or
    ``none``: no prior (maximum likelihood)."""
    text = str(value).strip().lower()
    if text in ("none", "off", "ml"):
        return 0.0
    sd = float(text)
    if not (math.isfinite(sd) and sd >= 0):
        raise ValueError(text)
    return sd


coef_sd_option.__name__ = "a number >= 0, or none (no prior: maximum likelihood)"


class ConstantPrior(Prior):
    """One per-SNP variance for every variant, scaled by allele frequency.

    ``f_m = c * (p_m (1 - p_m))^alpha`` with a single learnt ``c`` (stored as
    ``log c``).  ``alpha = 0`` gives the same variance for every standardised variant
    (the infinitesimal model); ``alpha`` near 0.7 down-weights rare variants less than
    the standardised model would (the LDAK/"alpha model" convention).
    """

    name = "constant"
    description = "one learnt per-SNP variance c, f = c * (p(1-p))^alpha"
    small = True  # one or two parameters: fitted to the maximum by L-BFGS
    # AdamW (when asked for): the paper's 1e-3 assumed many mini-batch steps; with the
    # default 100 full-batch epochs it stopped 0.11 short in log c on a chr22
    # simulation, 0.05 stopped 0.001 short (docs/usage.md)
    default_lr = 0.05
    options = {
        "alpha": Option(alpha_option, 0.7, "frequency exponent, or 'learn' (0: same variance for every SNP)"),
        "init": Option(float, 0.0, "initial per-SNP variance c (0: from the data)"),
    }

    def module(self, context):
        from varfx.nn.priors import ConstantModule

        init = self.config["init"] or float(context.get("init_f", 1e-6))
        return ConstantModule(init_f=init, alpha=self.config["alpha"])


class GLMPrior(Prior):
    """A log-linear model of the variant's features (DeepWAS App. A.2).

    ``log f_m = b + w . x_m + alpha log(p_m (1 - p_m))`` where ``x_m`` are the
    variant's scalar features as stored by ingest (normalised to mean 0 / variance 1),
    so ``exp(w_j)`` is the fold change of the per-SNP variance per standard deviation of
    feature j.  Starts at ``w = 0`` and ``b`` = the data's per-SNP variance.

    ``coef_sd`` (tau) puts the prior ``N(0, tau^2)`` on each ``w_j`` and makes the fit a
    MAP estimate (docs/math.md, "A prior on the GLM's coefficients"): tau = 1 means a
    fold change of the per-SNP variance per SD of a feature within exp(+-1.96) = 0.14..7.1
    with 95% prior probability.  Measured on the LD-capped GLM simulations
    (docs/benchmarks.md) tau = 1 bounded the maximum likelihood's drift of a depleted
    annotation; ``coef_sd=none`` (or 0) is the maximum-likelihood fit.
    """

    name = "glm"
    description = "log f = b + w.x + alpha log(p(1-p)) over the stored per-variant features"
    small = True  # one coefficient per feature: fitted to the maximum by L-BFGS
    default_lr = 0.05  # as the constant prior's (150 AdamW epochs reached L-BFGS's loss to 1e-8)
    recorded_options = ("coef_sd",)  # the MAP objective depends on it
    options = {
        "alpha": Option(alpha_option, 0.7, "frequency exponent, or 'learn'"),
        "init": Option(float, 0.0, "initial per-SNP variance exp(b) (0: from the data)"),
        "coef_sd": Option(coef_sd_option, 2.0, "prior SD of each standardised coefficient (log f per SD of "
                                               "the feature); none or 0: maximum likelihood"),
    }

    def module(self, context):
        from varfx.nn.priors import GLMModule

        n_features = int(context.get("n_features", 0))
        if n_features < 1:
            from varfx.errors import UserError

            raise UserError("prior 'glm' needs features: the dataset has none (ingest with --annotations)")
        init = self.config["init"] or float(context.get("init_f", 1e-6))
        try:
            coef_sd = coef_sd_option(self.config["coef_sd"])
        except ValueError:
            from varfx.errors import UserError

            raise UserError(f"prior 'glm': coef_sd={self.config['coef_sd']!r}: expected "
                            f"{coef_sd_option.__name__}") from None
        return GLMModule(n_features, init_f=init, alpha=self.config["alpha"], coef_sd=coef_sd)


class TransformerPrior(Prior):
    """An Enformer-style network over each variant's window of per-base feature tracks.

    Convolutional stem, a convolution tower with pooling, transformer layers with
    relative-position attention and a pointwise head joined with the scalar features
    (:mod:`varfx.nn.transformer`).  The default (74k parameters with 5 tracks) is small
    enough for a CPU; the paper's model is ``-p width=1536 -p depth=2 -p tower=1``
    (51.4M parameters with 5 tracks and 10 scalar features) and its small variant
    ``-p width=384 -p depth=2 -p tower=1`` (3.2M).
    """

    name = "transformer"
    description = "Enformer-style network over the feature window (conv stem/tower, relative-position attention)"
    # measured on two simulations (docs/benchmarks.md, "The transformer prior's default
    # learning rate"): with one update per epoch and early stopping, 1e-2 is the best or
    # within 0.05 of the best held-out RMSE of log f; the paper's 1e-4 (for runs of many
    # thousands of updates) learns almost nothing in 100 epochs; at 0.05 the training loss
    # jumped (-3.02 to -1.70 in one epoch) and settled above its start
    default_lr = 1e-2
    # --batch-windows when not given: the training windows split into this many steps an
    # epoch (one window a step when there are fewer).  On the demo's 24 training windows
    # (docs/benchmarks.md, "Defaults of network priors") 24 updates an epoch reached a
    # held-out gain over the constant prior of 220-223 (two seeds, several runs; the GLM
    # 221) against 214-217 with one full-batch update an epoch, and stopped early
    default_updates_per_epoch = 24
    options = {
        "alpha": Option(alpha_option, 0.7, "frequency exponent, or 'learn'"),
        "width": Option(int, 64, "channels of the tower's last block and of the transformer"),
        "depth": Option(int, 1, "transformer layers"),
        "tower": Option(int, 2, "convolution blocks with pooling after the stem"),
        "heads": Option(int, 4, "attention heads"),
        "dropout": Option(float, 0.1, "dropout rate"),
        "chunk": Option(int, 1024, "variants per forward chunk (bounds activation memory)"),
        "init": Option(float, 0.0, "initial per-SNP variance (0: from the data)"),
    }

    def module(self, context):
        from varfx.errors import UserError
        from varfx.nn.transformer import TransformerModule

        n_tracks, window = int(context.get("n_tracks", 0)), int(context.get("window", 0))
        if n_tracks < 1 or window < 2:
            raise UserError("prior 'transformer' needs per-base feature tracks: the dataset has none "
                            "(ingest with --annotations listing bigWig or BED files)")
        c = self.config
        try:
            return TransformerModule(n_tracks, window, int(context.get("n_features", 0)), width=c["width"],
                                     depth=c["depth"], tower=c["tower"], heads=c["heads"], dropout=c["dropout"],
                                     chunk=c["chunk"], init_f=c["init"] or float(context.get("init_f", 1e-6)),
                                     alpha=c["alpha"])
        except ValueError as exc:
            raise UserError(f"prior 'transformer': {exc}") from None


class SeqCNNPrior(Prior):
    """A Basenji-style residual CNN over the reference DNA centred on each variant
    (MIFM's instance model, :mod:`varfx.nn.seqcnn`; ``docs/seqcnn.md``).

    Reads ``window`` bases of one-hot DNA (A, C, G, T; N all zero) plus a variant-token
    channel from the FASTA recorded with the dataset (or ``fit/score --fasta``); no
    stored features and no frequency factor.  The output ``log(init_f) + h(DNA)`` is
    ``log f`` for ``full``/``ldsr`` and a logit for ``mil`` (whose ``init_f`` is 1).  The
    default has 23,379 parameters (MIFM's ~24.7k shape).
    """

    name = "seqcnn"
    description = "Basenji-style residual CNN over one-hot DNA around the variant (reads the dataset's FASTA)"
    # measured (docs/seqcnn.md, "Learning rate"; benchmarks/seqcnn_lr.py): a 10-bp motif
    # planted 3-39 bp from the variant, instance BCE, 400 sequences, batch 64, AdamW:
    # held-out AUROC > 0.9 after 10 epochs at 5 of 6 seeds with 1e-2 (5 of 6 already after
    # 5), 4 of 6 with 3e-3, 2 of 6 with 1e-3, 1 of 3 with 3e-2, none with 1e-4 (MIFM's rate)
    default_lr = 1e-2
    options = {
        "window": Option(int, 512, "bases of DNA the network sees (even; the variant at window // 2)"),
        "width": Option(int, 16, "stem channels (the tower widens them by ~1.18 per block)"),
        "tower": Option(int, 4, "tower blocks (convolution kernel 5, residual pointwise, max-pool 2)"),
        "dilated": Option(int, 2, "dilated residual blocks (kernel 3, dilation 2, 3, ...)"),
        "crop": Option(int, 4, "centre bins kept after the tower (a bin is 2^(tower+1) bases)"),
        "dropout": Option(float, 0.1, "channel dropout rate on the residual blocks"),
        "max_shift": Option(int, 8, "training: random shift of up to this many bases (eval: centred)"),
        "rc": Option(boolean, True, "training: random reverse complement; eval: mean of both strands"),
        "variant_token": Option(boolean, True, "a fifth input channel marking the variant's base"),
        "allele_aware": Option(boolean, False, "write the variant's alternative allele at the centre "
                                               "(false: reference context only, as MIFM)"),
        "init": Option(float, 0.0, "starting output exp(log_init) (0: the context's init_f)"),
        "chunk": Option(int, 1024, "training: variants per checkpointed chunk when a step has more "
                                   "(bounds activation memory, ~0.6 MB per variant of a chunk)"),
    }

    def sequence_length(self) -> int:
        from varfx.errors import UserError

        window, shift = int(self.config["window"]), int(self.config["max_shift"])
        if window < 2 or window % 2 or shift < 0:
            raise UserError(f"prior 'seqcnn': window={window}, max_shift={shift}: expected an even window "
                            "of at least 2 bases and max_shift >= 0")
        return window + 2 * shift + 1  # odd: the variant is the reverse complement's fixed point

    def module(self, context):
        from varfx.errors import UserError
        from varfx.nn.seqcnn import SeqCNNModule

        c = self.config
        init = c["init"] or float(context.get("init_f", 1.0))
        if not init > 0:
            raise UserError(f"prior 'seqcnn': init={init}: expected a positive starting value")
        try:
            return SeqCNNModule(window=c["window"], width=c["width"], tower=c["tower"], dilated=c["dilated"],
                                crop=c["crop"], dropout=c["dropout"], max_shift=c["max_shift"], rc=c["rc"],
                                variant_token=c["variant_token"], allele_aware=c["allele_aware"], init_f=init,
                                chunk=c["chunk"])
        except ValueError as exc:
            raise UserError(f"prior 'seqcnn': {exc}") from None


@hookimpl
def register_priors(register):
    register(ConstantPrior)
    register(GLMPrior)
    register(TransformerPrior)
    register(SeqCNNPrior)
