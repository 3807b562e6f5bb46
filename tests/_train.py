"""Helpers that several test files share: interrupting a fit right after a checkpoint
(as a kill would), running the same fit in one and in two torchrun processes, and a
snapshot of a directory tree (to see what a failed command left behind)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


class Interrupted(Exception):
    """Raised in place of a kill, right after a checkpoint was written."""


def interrupted_after_checkpoint(n: int, fit) -> None:
    """Call ``fit()`` and stop it right after its ``n``-th checkpoint; fails the test when
    the fit ends before that."""
    import varfx.train.checkpoint as ck

    real, calls = ck.save_checkpoint, {"n": 0}

    def stopping(model_dir, state):
        real(model_dir, state)
        calls["n"] += 1
        if calls["n"] == n:
            raise Interrupted

    # looked up at call time by the trainer, so replacing the module attribute is enough
    ck.save_checkpoint = stopping
    try:
        with pytest.raises(Interrupted):
            fit()
    finally:
        ck.save_checkpoint = real


def one_and_two_processes(invoke, args, tmp: Path) -> tuple[Path, Path]:
    """Run ``varfx ARGS`` in this process and under ``torchrun`` with 2 CPU processes;
    returns the two model directories (``tmp/dp-1``, ``tmp/dp-2``)."""
    if shutil.which("torchrun") is None:
        pytest.skip("torchrun not on PATH")
    one, two = tmp / "dp-1", tmp / "dp-2"
    assert invoke(args + ["-o", one]).exit_code == 0
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(["torchrun", "--standalone", "--nproc_per_node", "2", "-m", "varfx", *args, "-o", str(two)],
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return one, two


PROBE = Path(__file__).with_name("_ddp_probe.py")


def torchrun(args, *, nproc: int = 2, env=None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``torchrun --standalone`` with ``nproc`` CPU processes (one thread each) running
    ``varfx ARGS`` through :mod:`_ddp_probe` (whose hooks ``env`` may switch on)."""
    if shutil.which("torchrun") is None:
        pytest.skip("torchrun not on PATH")
    full = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run(["torchrun", "--standalone", "--nproc_per_node", str(nproc), str(PROBE),
                           *[str(a) for a in args]], capture_output=True, text=True, timeout=timeout, env=full)


def tree(*roots) -> dict:
    """Every path under ``roots`` (with size and mtime for files) to see what a command
    changed (a directory's mtime changes when a temporary file comes and goes)."""
    out = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames:
                out[str(Path(dirpath) / name)] = "dir"
            for name in filenames:
                st = (Path(dirpath) / name).lstat()
                out[str(Path(dirpath) / name)] = (st.st_size, st.st_mtime_ns)
    return out
