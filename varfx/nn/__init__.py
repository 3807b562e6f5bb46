"""Torch modules behind the built-in priors (imported only when a model is built)."""
