"""The plugin manager: built-in plugins and the ``varfx`` entry-point group.

Built-in plugins are listed in :data:`DEFAULT_PLUGINS` and registered through the same
path as third-party ones.  Environment variables:

- ``VARFX_LOAD_PLUGINS``: comma-separated entry-point names of the third-party plugins
  to load; unset loads all of them, an empty string none.  Built-ins always load.
- ``VARFX_STRICT_PLUGINS=1``: a plugin that fails to load is an error instead of a
  warning.

Name clashes: **the plugin registered last wins**, with one warning per clash.  The
built-ins register first, then third-party plugins in the order of their entry-point
names (sorted, so the outcome does not depend on how pip laid out site-packages).  So
a third-party ``cholesky`` replaces the built-in one, as pytest lets a plugin override
a built-in hook and as ``docs/plugins.md`` promises; ``VARFX_LOAD_PLUGINS`` leaves a
plugin out to get the built-in back.
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib import metadata

import pluggy

from . import hookspecs
from .errors import UserError

ENTRY_POINT_GROUP = "varfx"

DEFAULT_PLUGINS = (
    "varfx.default_plugins.priors",
    "varfx.default_plugins.objectives",
    "varfx.default_plugins.solvers",
    "varfx.default_plugins.features",
    "varfx.default_plugins.formats",
)

KINDS = {
    "priors": "register_priors",
    "objectives": "register_objectives",
    "solvers": "register_solvers",
    "feature_sources": "register_feature_sources",
    "sumstats_formats": "register_sumstats_formats",
    "ld_formats": "register_ld_formats",
}

_pm: pluggy.PluginManager | None = None
_load_errors: list[tuple[str, str]] = []
_warned_clashes: set[tuple[str, str, str, str]] = set()  # (kind, name, loser, winner)


def _warn(message: str) -> None:
    print(f"varfx: warning: {message}", file=sys.stderr)


def _wanted() -> set[str] | None:
    raw = os.environ.get("VARFX_LOAD_PLUGINS")
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def _strict() -> bool:
    return os.environ.get("VARFX_STRICT_PLUGINS", "") not in ("", "0", "false", "no")


def _failed(name: str, exc: BaseException) -> None:
    msg = f"plugin {name!r} failed to load: {type(exc).__name__}: {exc}"
    if _strict():
        raise UserError(msg + " (VARFX_STRICT_PLUGINS is set)")
    _load_errors.append((name, f"{type(exc).__name__}: {exc}"))
    _warn(msg + " (skipped)")


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, built on first use."""
    global _pm
    if _pm is not None:
        return _pm
    pm = pluggy.PluginManager("varfx")
    pm.add_hookspecs(hookspecs)
    wanted = _wanted()
    for modname in DEFAULT_PLUGINS:
        try:
            mod = importlib.import_module(modname)
            pm.register(mod, name=modname)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the CLI
            _failed(modname, exc)
    for ep in _entry_points():
        if wanted is not None and ep.name not in wanted:
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            mod = ep.load()
            pm.register(mod, name=ep.name)
        except Exception as exc:  # noqa: BLE001
            _failed(ep.name, exc)
    _pm = pm
    return pm


def _entry_points():
    eps = metadata.entry_points()
    if hasattr(eps, "select"):
        found = list(eps.select(group=ENTRY_POINT_GROUP))
    else:  # pragma: no cover - python < 3.10
        found = list(eps.get(ENTRY_POINT_GROUP, []))
    # sorted by name: the registration order, hence which plugin wins a clash, must not
    # depend on the order of directories on sys.path or of files in site-packages
    return sorted(found, key=lambda ep: ep.name)


def reset() -> None:
    """Forget the plugin manager (tests change the environment and reload)."""
    global _pm
    _pm = None
    _load_errors.clear()
    _warned_clashes.clear()


def load_errors() -> list[tuple[str, str]]:
    get_plugin_manager()
    return list(_load_errors)


def _collect(kind: str) -> dict[str, tuple[type, str]]:
    """Name -> (class, plugin name) for one kind; on a clash the plugin registered last
    wins (see the module docstring), with one warning per clash and process."""
    pm = get_plugin_manager()
    hook = getattr(pm.hook, KINDS[kind])
    found: dict[str, tuple[type, str]] = {}
    # pluggy's own order is its *call* order (LIFO, reordered by tryfirst/trylast), so
    # the plugins are walked in the order they were registered with the manager instead
    order = {name: i for i, (name, _) in enumerate(pm.list_name_plugin())}
    for impl in sorted(hook.get_hookimpls(), key=lambda im: order.get(im.plugin_name, len(order))):
        plugin_name = impl.plugin_name

        def register(cls, _plugin=plugin_name):
            name = getattr(cls, "name", "")
            if not name:
                raise UserError(f"plugin {_plugin!r} registered a {kind[:-1]} with no name")
            if name in found and found[name][1] != _plugin:
                clash = (kind, name, found[name][1], _plugin)
                if clash not in _warned_clashes:
                    _warned_clashes.add(clash)
                    _warn(f"{kind[:-1].replace('_', ' ')} {name!r} from plugin {_plugin!r} replaces the one from "
                          f"{found[name][1]!r} (the plugin registered last wins)")
            found[name] = (cls, _plugin)

        try:
            impl.function(register=register)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001
            _failed(plugin_name, exc)
    return found


def get_priors() -> dict[str, type]:
    return {k: v[0] for k, v in _collect("priors").items()}


def get_objectives() -> dict[str, type]:
    return {k: v[0] for k, v in _collect("objectives").items()}


def get_solvers() -> dict[str, type]:
    return {k: v[0] for k, v in _collect("solvers").items()}


def get_feature_sources() -> dict[str, type]:
    return {k: v[0] for k, v in _collect("feature_sources").items()}


def get_sumstats_formats() -> dict:
    """Name -> :class:`varfx.api.SumstatsFormat` record, in registration order."""
    return {k: v[0] for k, v in _collect("sumstats_formats").items()}


def get_ld_formats() -> dict[str, type]:
    """Name -> :class:`varfx.api.LDFormat` subclass, in registration order."""
    return {k: v[0] for k, v in _collect("ld_formats").items()}


def lookup(kind: str, name: str) -> type:
    """The class registered under ``name`` for ``kind`` ('priors', 'solvers', ...)."""
    table = {k: v[0] for k, v in _collect(kind).items()}
    if name not in table:
        raise UserError(
            f"unknown {kind[:-1].replace('_', ' ')} {name!r} (available: {', '.join(sorted(table)) or 'none'})"
        )
    return table[name]


def describe_plugins() -> list[dict]:
    """One record per loaded plugin: name, version, and what it registered."""
    pm = get_plugin_manager()
    collected = {kind: _collect(kind) for kind in KINDS}
    dists = _plugin_distributions()
    records = []
    for name, plugin in pm.list_name_plugin():
        rec = {"name": name, "version": None, "builtin": name in DEFAULT_PLUGINS, "hooks": []}
        if name in DEFAULT_PLUGINS:
            from . import __version__

            rec["version"] = __version__
        elif name in dists:
            rec["version"] = dists[name]
        rec["hooks"] = sorted(
            impl.name for impl in pm.get_hookcallers(plugin) or [] if impl.name.startswith("register")
        )
        for kind in KINDS:
            names = [n for n, (_, p) in collected[kind].items() if p == name]
            if names:
                rec[kind] = names
        records.append(rec)
    for name, err in _load_errors:
        records.append({"name": name, "version": None, "builtin": name in DEFAULT_PLUGINS, "error": err})
    return records


def _plugin_distributions() -> dict[str, str]:
    out = {}
    for ep in _entry_points():
        dist = getattr(ep, "dist", None)
        if dist is not None:
            out[ep.name] = dist.version
    return out
