"""Conformance test cases that plugins subclass, one module per plugin kind
(for example ``varfx.testing.solvers.SolverConformance``).

These modules import pytest and are meant for test suites only.
"""
