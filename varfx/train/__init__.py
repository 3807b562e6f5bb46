"""The trainer behind ``varfx fit``, in parts that can be tested (and replaced) alone.

- :mod:`.setup`: resolve the plugins and options, read the windows, estimate sigma^2
  (LD score regression) and build the typed :class:`varfx.api.FitContext`;
- :mod:`.schedule`: the warm-up + cosine learning-rate schedule of AdamW;
- :mod:`.checkpoint`: save, load and validate checkpoints (tensors only), best weights;
- :mod:`.distributed`: data parallelism over ``torchrun`` processes;
- :mod:`.loop`: the mini-batch AdamW loop (networks);
- :mod:`.lbfgs`: the full-batch L-BFGS fit to the maximum (priors with few parameters);
- :mod:`.penalty`: a prior module's ``-log p(theta)`` added to the loss (MAP fits).

The loops never look inside a batch: the objective says what one unit of a batch is
(:attr:`varfx.api.Objective.batch_unit`), how many variants a batch holds and what its
loss is (:meth:`varfx.api.Objective.batch_loss`), so an objective over another kind of
unit plugs in without touching them.  Torch is imported inside functions only.
"""
