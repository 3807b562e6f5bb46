"""The model directory written by ``varfx fit``: ``model.json`` (readable) and
``checkpoint.pt`` (tensors only).

A checkpoint is a dict of tensors, numbers and strings (JSON text for the state, the
curve and the config), written atomically and always read with
``torch.load(..., weights_only=True)``, so a model directory from someone else cannot
run code on load.  :func:`read_checkpoint` refuses, with one line naming the file, a
checkpoint that is empty, truncated, not tensor-only, lacks the expected keys, or holds
non-finite numbers; :func:`check_prior_state` refuses weights whose names or shapes are
not those of the prior (a checkpoint from another prior).  The messages never suggest
loading with ``weights_only=False``: that would run the file's code.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError

MODEL_JSON = "model.json"
CHECKPOINT = "checkpoint.pt"
MODEL_FORMAT = "varfx-model"
MODEL_VERSION = 1
REQUIRED_KEYS = ("prior",)  # what every reader needs; a fit checks its own keys too


def read_model_json(model_dir) -> dict:
    """model.json of a model directory, checked: a JSON object of this format and
    version that names its prior (one line naming the file otherwise)."""
    path = Path(model_dir) / MODEL_JSON
    if not path.is_file():
        raise UserError(f"no {MODEL_JSON} (expected the output of `varfx fit`)", path=model_dir)
    try:
        meta = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"not valid JSON ({exc}); re-run `varfx fit`", path=path) from None
    if not isinstance(meta, dict):
        raise UserError(f"not a varfx model (a JSON {type(meta).__name__}, expected an object); "
                        "re-run `varfx fit`", path=path)
    if meta.get("format") != MODEL_FORMAT:
        raise UserError(f"not a varfx model (format {meta.get('format')!r})", path=path)
    try:
        version = int(meta.get("format_version", -1))
    except (TypeError, ValueError):
        version = -1
    if version != MODEL_VERSION:
        raise UserError(f"model format version {meta.get('format_version')!r}; this varfx reads {MODEL_VERSION}",
                        path=path)
    prior = meta.get("prior")
    if not (isinstance(prior, dict) and isinstance(prior.get("name"), str)
            and isinstance(prior.get("options", {}), dict)):
        raise UserError("model.json names no prior (expected \"prior\": {\"name\": ..., \"options\": {...}}); "
                        "re-run `varfx fit`", path=path)
    return meta


def save_checkpoint(model_dir, state: dict) -> None:
    import torch

    from . import atomic_path

    with atomic_path(Path(model_dir) / CHECKPOINT) as tmp:
        torch.save(state, tmp)


def read_checkpoint(model_dir, keys=REQUIRED_KEYS) -> dict | None:
    """The checkpoint of ``model_dir`` (None when there is none), validated: a dict with
    ``keys``, whose ``prior`` entry maps parameter names to finite tensors."""
    import pickle

    import torch

    path = Path(model_dir) / CHECKPOINT
    if not path.is_file():
        return None
    remedy = "remove it (or use another model directory) to start the fit afresh"
    if path.stat().st_size == 0:
        raise UserError(f"empty checkpoint (zero bytes, an interrupted copy?); {remedy}", path=path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message recommends weights_only=False, i.e. running the file's code
        raise UserError("not a tensor-only varfx checkpoint (it holds Python objects, which varfx never "
                        f"loads); {remedy}", path=path) from None
    except Exception:  # noqa: BLE001 - a truncated or garbled zip, a foreign format...
        raise UserError(f"unreadable checkpoint (truncated or not a torch file); {remedy}", path=path) from None
    if not isinstance(ckpt, dict):
        raise UserError(f"not a varfx checkpoint (a {type(ckpt).__name__}, expected a dict); {remedy}", path=path)
    missing = [k for k in keys if k not in ckpt]
    if missing:
        raise UserError(f"not a varfx checkpoint (no {', '.join(missing)}); {remedy}", path=path)
    for key in ("prior", "best_prior"):
        if key in ckpt:
            _check_tensors(ckpt[key], path, key)
    return ckpt


def _check_tensors(state, path, key):
    import torch

    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise UserError(f"checkpoint entry {key!r} is not a set of named tensors", path=path)
    for name, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise UserError(f"checkpoint parameter {name} holds NaN or infinite values", path=path)


def check_prior_state(state: dict, module, path, prior_name: str = "") -> None:
    """Refuse weights that are not the module's: other names or shapes mean the
    checkpoint was written for another prior (or other prior options)."""
    own = module.state_dict()
    what = f"prior {prior_name!r}" if prior_name else "this prior"
    extra = sorted(set(state) - set(own))
    missing = sorted(set(own) - set(state))
    if extra or missing:
        name = (missing or extra)[0]
        raise UserError(f"checkpoint is from another prior: parameter {name} "
                        f"{'missing' if missing else 'unknown to ' + what}", path=path)
    for name, value in own.items():
        if tuple(state[name].shape) != tuple(value.shape):
            raise UserError(f"checkpoint is from another prior: parameter {name} has shape "
                            f"{tuple(state[name].shape)}, {what} has {tuple(value.shape)}", path=path)


def build_prior(meta_prior: dict, context):
    """Instantiate the prior plugin named in model.json and build its module."""
    from ..plugins import lookup

    cls = lookup("priors", meta_prior["name"])
    return cls(**meta_prior.get("options", {})).module(context)


def load_model(model_dir, dtype="float64", device="cpu"):
    """(meta, prior module in eval mode) of a fitted model directory."""
    meta = read_model_json(model_dir)
    ckpt = read_checkpoint(model_dir)
    if ckpt is None:
        raise UserError(f"no {CHECKPOINT} (the fit did not run or was removed)", path=model_dir)
    from ..api import FitContext

    inputs = meta.get("inputs", {})
    context = FitContext(init_f=1e-6, **{k: int(inputs.get(k, 0)) for k in ("n_features", "n_tracks", "window")})
    module = build_prior(meta["prior"], context)
    check_prior_state(ckpt["prior"], module, Path(model_dir) / CHECKPOINT, meta["prior"].get("name", ""))
    module.load_state_dict(ckpt["prior"])
    module.eval()
    return meta, module


def model_output(meta) -> str:
    """``"log_f"`` or ``"logit"``: what the model's prior outputs, from its objective
    plugin (``prior_output``, "log_f" when the objective does not say)."""
    from ..plugins import lookup

    obj = meta.get("objective")
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return "log_f"  # a model from before objectives were recorded was likelihood-trained
    kind = getattr(lookup("objectives", obj["name"]), "prior_output", "log_f")
    if kind not in ("log_f", "logit"):
        raise UserError(f"objective {obj['name']!r} declares prior_output {kind!r}: expected 'log_f' or 'logit'")
    return kind
