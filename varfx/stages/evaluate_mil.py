"""``varfx evaluate`` of a fine-mapping model (one whose prior output is a logit: the
``mil`` and ``distil`` objectives): how well it ranks variants inside held-out bags.

Fine-mapping asks *which* variant of an associated LD block is causal, so the measure is
within bags.  With a truth file (TSV with columns ``SNP`` and ``causal``, 1 for a causal
variant: a simulation's ``truth.tsv``), for every evaluated positive bag that contains a
causal variant ``c``, each member ``j`` in strong LD with it (``r^2 >= --r2-min``, 0.5
by default: the neighbours a marginal association cannot tell apart from it) makes one
pair; ``auroc_within_bags`` is the fraction of pairs the model ranks the right way round
(``logit_c > logit_j``; ties count one half), pooled over bags.  The same pairs ranked by
``|z|`` (``auroc_within_bags_abs_z``) show what the summary statistics alone achieve
(high with in-sample LD and strong effects, lower with a public LD panel).  Also:
``top1_within_bags`` (the causal variant scores highest in its bag, against the
fraction expected by chance) and ``auroc_causal_vs_negatives`` (causal variants against
the bag store's negative variants of the same chromosomes).  Without a truth file only
the bag-level measures are given: the mean probability of positive bags' top instance
and of negatives.
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError

R2_MIN = 0.5


def pair_auroc(pos_scores, neg_scores) -> float:
    """P(score of a positive > score of a negative) over the given pairs (ties 1/2)."""
    pos, neg = np.asarray(pos_scores, float), np.asarray(neg_scores, float)
    if not len(pos):
        return float("nan")
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def auroc(pos, neg) -> float:
    """Mann-Whitney AUROC of two independent samples (ties 1/2), by ranks."""
    from scipy.stats import rankdata

    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    if not len(pos) or not len(neg):
        return float("nan")
    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _zero_or_one(text):
    text = text.strip()
    if text not in ("0", "1"):
        raise ValueError(text)
    return int(text)


def read_causal(path, snps) -> np.ndarray:
    """Per dataset variant: 1 causal, 0 not, -1 absent from the truth file (TSV with
    columns SNP and causal, the latter 0 or 1 on every row)."""
    from ..store.truth import read_truth_column

    return read_truth_column(path, snps, "causal", _zero_or_one, "0 or 1", -1, np.int8)


def within_bag_pairs(bags, causal, r2_of, r2_min=R2_MIN):
    """``(causal_idx, neighbour_idx, n_bags, chance_top1)`` over the bags with a causal
    member: every member in LD ``r^2 >= r2_min`` with that causal variant pairs with it.
    ``r2_of(bag, c)`` returns the r^2 of each member of ``bag`` with member ``c``."""
    ci, nj, used, chance = [], [], 0, []
    for bag in bags:
        members = np.asarray(bag.variants)
        is_c = causal[members] == 1
        if not is_c.any():
            continue
        used += 1
        chance.append(1.0 / len(members))
        for c in members[is_c]:
            r2 = r2_of(bag, int(c))
            near = (r2 >= r2_min) & (members != c) & (causal[members] != 1)
            ci.extend([int(c)] * int(near.sum()))
            nj.extend(members[near].tolist())
    return np.array(ci, np.int64), np.array(nj, np.int64), used, float(np.mean(chance)) if chance else float("nan")


def run_evaluate_mil(model_dir, dataset, meta, module, chroms, truth=None, r2_min=R2_MIN, predict=None) -> dict:
    """The fine-mapping measures of the module docstring on the bags of ``chroms``.

    ``predict(module, h5)``: the instance logits of every dataset variant (the caller's
    way of giving the prior its inputs)."""
    from ..io.ld import open_ld
    from ..store.bags import load_bags
    from ..store.dataset import open_dataset

    bags = load_bags(dataset).select(chroms=chroms)
    if not bags.positives:
        raise UserError(f"no bags on chromosomes {', '.join(map(str, chroms))} in the bag store", path=dataset)
    with open_dataset(dataset) as h5:
        logit = predict(module, h5)
        z = h5["variants"]["z"][:].astype(np.float64)
        bp = h5["variants"]["bp"][:]
        snps = h5["variants"]["snp"].asstr()[:] if truth else None
        bad = ~np.isfinite(logit)
        if bad.any():
            raise UserError(f"the model gives a non-finite logit for {int(bad.sum())} variants of the dataset "
                            f"(first: variant {int(np.flatnonzero(bad)[0])})", path=model_dir)
        prob = 1.0 / (1.0 + np.exp(-logit))
        top = np.array([prob[b.variants].max() for b in bags.positives])
        result = {
            "prior": meta["prior"]["name"], "objective": meta["objective"]["name"], "chroms": list(chroms),
            "n_bags": len(bags.positives), "n_negatives": int(len(bags.negatives)),
            "mean_top_p_positive_bags": float(top.mean()),
            "mean_p_negatives": float(prob[bags.negatives].mean()) if len(bags.negatives) else None,
            "train_loss": meta["curve"][-1]["train_loss"] if meta.get("curve") else None,
            "val_loss": meta["curve"][-1].get("val_loss") if meta.get("curve") else None,
        }
        if not truth:
            return result
        causal = read_causal(truth, snps)
        ld = open_ld(h5)

        def r2_of(bag, c):
            order = np.argsort(bag.variants)
            idx = np.asarray(bag.variants)[order]
            R = ld.correlation(idx, bag.chrom, float(bp[c]))
            row = R[int(np.searchsorted(idx, c))] ** 2
            out = np.empty(len(idx))
            out[order] = row
            return out

        ci, nj, used, chance = within_bag_pairs(bags.positives, causal, r2_of, r2_min)
    if used == 0:
        raise UserError("no evaluated bag contains a causal variant of the truth file", path=truth)
    top1 = [int(np.argmax(logit[b.variants]) == np.flatnonzero(causal[b.variants] == 1)[0])
            for b in bags.positives if (causal[b.variants] == 1).any()]
    cv = np.flatnonzero(causal == 1)
    cv = cv[np.isin(cv, np.concatenate([b.variants for b in bags.positives]))]
    result.update({
        "r2_min": r2_min, "n_bags_with_causal": used, "n_pairs": int(len(ci)),
        "auroc_within_bags": pair_auroc(logit[ci], logit[nj]),
        "auroc_within_bags_abs_z": pair_auroc(np.abs(z[ci]), np.abs(z[nj])),
        "top1_within_bags": float(np.mean(top1)), "top1_chance": chance,
        "auroc_causal_vs_negatives": auroc(logit[cv], logit[bags.negatives]) if len(bags.negatives) else None,
    })
    return result
