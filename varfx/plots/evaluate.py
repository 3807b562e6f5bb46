"""The figures of one `varfx evaluate` result (``--plots DIR``)."""

from __future__ import annotations

from pathlib import Path


def evaluate_plots(result: dict, model_dirs: list, dataset, truth, truth_col, out_dir, fasta=None,
                   held_out: bool = False) -> list[Path]:
    """Draw what fits an evaluate ``result`` into ``out_dir``; returns the paths written.

    - a comparison (``result["comparison"]``): ``compare.png``, the models' bars with +-1 SE;
    - one likelihood-trained model: ``truth.png`` when the result has an ``rmse_log_f``
      (a truth of prior variances was given: the same variants, so the RMSE in the
      title is the result's), and ``ldsr.png`` with the model's expected chi^2, both on
      the evaluated chromosomes, or with ``held_out`` (the result is of evaluate's
      default, the model's held-out windows) on the model's held-out variants and
      windows, its ``--holdout-region`` regions included;
    - one fine-mapping model (no likelihood): ``ldsr.png`` of the dataset alone (its
      logit is no variance, so it has no expected chi^2).
    """
    from .compare import plot_compare
    from .ldsr import plot_ldsr
    from .truth import plot_truth

    if result.get("comparison"):
        return [plot_compare(None, out_dir, result=result).path]
    chroms = None if held_out else (result.get("chroms") or "all")
    model_dir = model_dirs[0] if model_dirs else None
    likelihood = "delta_loglik" in result and model_dir is not None
    paths = []
    if likelihood and truth and "rmse_log_f" in result:
        paths.append(plot_truth(model_dir, dataset, truth, out_dir, truth_col=truth_col or "F", chroms=chroms,
                                fasta=fasta).path)
    # a fine-mapping result: the dataset alone on the evaluated (bag) chromosomes
    paths.append(plot_ldsr(dataset, out_dir, model_dir=model_dir if likelihood else None,
                           chroms=chroms if likelihood else (result.get("chroms") or "all"), fasta=fasta).path)
    return paths
