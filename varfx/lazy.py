"""Package attributes imported on first use (PEP 562), so that importing a package such
as :mod:`varfx.features` or :mod:`varfx.plots` imports none of the heavy libraries its
modules need (the CLI's start-up imports them; tests/test_plugins.py checks)."""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict):
    """A module ``__getattr__`` for ``package``: ``exports`` maps an attribute name to
    the submodule (relative to ``package``) that defines it."""

    def __getattr__(name):
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
