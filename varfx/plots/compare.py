"""Models side by side (the paper's Fig. 4/5): bars of the likelihood increase per
person and of h2 (and of the RMSE of log f when every model has one), each with +-1
standard error, from the JSON that `varfx evaluate --json` prints."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from ..errors import UserError
from . import _draw

#: (key, its SE's key, axis label) of each panel; the RMSE panel only when every model has it
PANELS = (("pct_increase_per_person", "pct_increase_per_person_se", "likelihood increase per person (%)"),
          ("h2", "h2_se", "h2 (sum of f over the evaluated variants)"),
          ("rmse_log_f", None, "RMSE of log f against the truth"))
REQUIRED = ("pct_increase_per_person", "h2")


def _load(path) -> list:
    """The JSON objects of a file: one object, a JSON list of objects, or one object per
    line (the output of several `varfx evaluate --json` runs appended to one file)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"not a UTF-8 text file ({exc.reason} at byte {exc.start}); expected the JSON of "
                        "`varfx evaluate --json`", path=path) from None
    try:
        obj = json.loads(text)
        return obj if isinstance(obj, list) else [obj]
    except ValueError as whole:
        lines = [(i, s) for i, s in enumerate(text.splitlines(), start=1) if s.strip()]
        if len(lines) < 2:
            raise UserError(f"not valid JSON ({whole}); expected the JSON of `varfx evaluate --json`",
                            path=path) from None
        out = []
        for i, s in lines:
            try:
                out.append(json.loads(s))
            except ValueError as exc:
                raise UserError(f"not valid JSON ({whole}), nor one JSON object per line ({exc}); expected "
                                "the JSON of `varfx evaluate --json`", path=path, line=i) from None
        return out


def _number(value, where, key, path, optional=False):
    if value is None and optional:
        return math.nan
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok:
        raise UserError(f"{where}: {key} is {value!r}, expected a finite number"
                        f"{' or null' if optional else ''}", path=path)
    if key.endswith("_se") and value < 0:
        raise UserError(f"{where}: {key} is {value!r}, expected a standard error >= 0 or null", path=path)
    return float(value)


def read_comparison(paths) -> dict:
    """The models of one or more evaluate JSON files, in the order drawn: a comparison
    (``"comparison": true``, its ``models`` sorted by ``rank``) and/or single-model
    results (each named by its ``name``, else the directory name of its ``model``, else
    the file's name).  Returns ``{"models": [{name, pct_increase_per_person,
    pct_increase_per_person_se, h2, h2_se, rmse_log_f, rank}], "chroms", "dataset"}``
    with NaN for an absent or null value; a missing or non-finite value of
    :data:`REQUIRED` is a one-line error naming the file and the entry."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise UserError("no evaluate JSON file given")
    return comparison_models([(path, Path(path).stem, _load(path)) for path in paths])


def comparison_models(sources) -> dict:
    """:func:`read_comparison` of parsed JSON: ``sources`` is a list of ``(where, stem,
    objects)``, ``where`` naming the source in errors, ``stem`` the default model name."""
    models, chroms, datasets = [], [], []
    for path, stem0, objs in sources:
        if not objs:
            raise UserError("an empty JSON list: no model to draw", path=path)
        for j, obj in enumerate(objs):
            where = f"entry {j + 1}" if len(objs) > 1 else "the object"
            if not isinstance(obj, dict):
                raise UserError(f"{where} is a JSON {type(obj).__name__}, expected an object (the JSON of "
                                "`varfx evaluate --json`)", path=path)
            if obj.get("comparison") is True:
                entries = obj.get("models")
                if not isinstance(entries, list) or not entries:
                    raise UserError(f"{where}: a comparison without a non-empty \"models\" list", path=path)
                for i, m in enumerate(entries):
                    if not isinstance(m, dict):
                        raise UserError(f"models[{i}] is a JSON {type(m).__name__}, expected an object", path=path)
                ranked = sorted(enumerate(entries), key=lambda t: (_rank(t[1]), t[0]))
                for i, m in ranked:
                    models.append(_entry(m, f"models[{i}]", path, default_name=f"model {i + 1}"))
            else:
                stem = stem0 if len(objs) == 1 else f"{stem0}[{j + 1}]"
                models.append(_entry(obj, where, path, default_name=stem))
            chroms.append(tuple(obj.get("chroms") or ()))
            datasets.append(obj.get("dataset"))
    seen: dict[str, int] = {}
    for m in models:  # two models of the same name get told apart in the chart
        seen[m["name"]] = seen.get(m["name"], 0) + 1
        if seen[m["name"]] > 1:
            m["name"] = f"{m['name']} ({seen[m['name']]})"
    if len(set(chroms)) > 1:
        print("Note: the models were evaluated on different chromosomes ("
              + "; ".join(",".join(map(str, c)) or "?" for c in dict.fromkeys(chroms))
              + "): their bars are not comparable", file=sys.stderr)
    return {"models": models, "chroms": list(chroms[0]) if len(set(chroms)) == 1 else None,
            "dataset": datasets[0] if len(set(datasets)) == 1 else None}


def _rank(m):
    r = m.get("rank")
    return r if isinstance(r, (int, float)) and not isinstance(r, bool) and math.isfinite(r) else math.inf


def _entry(m, where, path, default_name) -> dict:
    name = m.get("name")
    if not isinstance(name, str) or not name:
        model = m.get("model")
        name = Path(model).name if isinstance(model, str) and model else default_name
    missing = [k for k in REQUIRED if k not in m]
    if missing:
        hint = (" (a fine-mapping model's evaluation? it has no likelihood to draw)"
                if "auroc_within_bags" in m else "")
        raise UserError(f"{where} ({name}): no {missing[0]}; expected the JSON of `varfx evaluate --json`{hint}",
                        path=path)
    out = {"name": name, "rank": m.get("rank")}
    for key, se, _ in PANELS:
        out[key] = _number(m.get(key), f"{where} ({name})", key, path, optional=key not in REQUIRED)
        if se is not None:
            out[se] = _number(m.get(se), f"{where} ({name})", se, path, optional=True)
    return out


def plot_compare(paths, out_dir, name: str = "compare.png", result: dict | None = None) -> _draw.Plot:
    """Write ``out_dir/compare.png`` from evaluate JSON files (``paths``; see
    :func:`read_comparison`) or from an evaluate ``result`` dict already in memory.
    ``data``: :func:`read_comparison`'s dict plus ``panels`` (the keys drawn).  A
    model without a standard error gets a bar without an error bar."""
    if result is not None:
        d = comparison_models([("the evaluate result", "model", [result])])
    else:
        d = read_comparison(paths)
    models = d["models"]
    panels = [p for p in PANELS if p[0] in REQUIRED or all(np.isfinite(m[p[0]]) for m in models)]
    d["panels"] = [p[0] for p in panels]
    path = _draw.out_path(out_dir, name)
    width = max(7.0, 1.6 + 0.55 * len(models) * len(panels))
    fig = _draw.figure(width, 4.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    pos = np.arange(len(models))
    labels = [m["name"] for m in models]
    for ax, (key, se, label) in zip(axes, panels):
        vals = np.array([m[key] for m in models])
        err = np.array([m[se] if se else math.nan for m in models])
        ax.bar(pos, vals, color=[f"C{i % 10}" for i in range(len(models))], alpha=0.85)
        has = np.isfinite(err)
        if has.any():
            ax.errorbar(pos[has], vals[has], yerr=err[has], fmt="none", ecolor="k", capsize=4, lw=1)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(pos)
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(label, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    where = f" on chr {','.join(map(str, d['chroms']))}" if d["chroms"] else ""
    fig.suptitle(f"{len(models)} models{where} (error bars: +-1 SE)", fontsize=10)
    fig.tight_layout()
    return _draw.Plot(_draw.save(fig, path), d)
