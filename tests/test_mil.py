"""The bag objectives (`mil`, `distil`) and the trainer for bags: conformance suites,
pooling against loops, negatives drawn per epoch, held-out chromosomes kept out of
training, an end-to-end fit on a tiny dataset whose one feature marks the causal
variant of each bag, and exact resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from varfx.cli import cli
from varfx.testing.objectives import DistilConformance, MILConformance, synthetic_bags

import _mil_data

torch.set_num_threads(1)


# ------------------------------------------------------------------- conformance suites


class TestMILMax(MILConformance):
    objective_options = {"pool": "max"}


class TestMILLSE(MILConformance):
    objective_options = {"pool": "lse", "r": 3.0}


class TestMILGMean(MILConformance):
    objective_options = {"pool": "gmean", "r": 2.5}


class TestMILISR(MILConformance):
    objective_options = {"pool": "isr", "positive_weight": 2.0}


class TestMILInstance(MILConformance):
    objective_options = {"label": "instance", "negatives": "single"}


class TestDistil(DistilConformance):
    objective_options = {"top_weight": 100.0}
