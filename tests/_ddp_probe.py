"""``varfx ARGS`` with test hooks, for a test to launch under torchrun (a script, so that
the hooks are in place in every process before varfx runs; nothing of this is in varfx):

- ``VARFX_PROBE_READS=DIR``: every process writes ``DIR/reads-RANK.json``, the indices
  of the windows whose factors it read from windows.h5 (metadata-only reads excluded),
  in the order read;
- ``VARFX_PROBE_STOP_AFTER=N``: rank 0 exits with status 3 right after its N-th
  checkpoint, as a kill would (the checkpoint is complete: it is written atomically);
- ``VARFX_PROBE_NAN=RANK:STEP``: the loss of that rank's STEP-th step (1-based, counted
  over the whole run) is NaN.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from pathlib import Path

RANK = int(os.environ.get("RANK", "0"))


def _reads(directory: Path) -> None:
    import varfx.store.windows as sw

    real, seen = sw.read_window, []

    def counting(g, attrs, tdtype, device="cpu", meta_only=False, path=None, dataset=None):
        if not meta_only:
            seen.append(int(g.attrs["index"]))
        return real(g, attrs, tdtype, device, meta_only, path=path, dataset=dataset)

    sw.read_window = counting  # looked up at call time by the store's readers
    atexit.register(lambda: (directory / f"reads-{RANK}.json").write_text(json.dumps(seen)))


def _stop_after(n: int) -> None:
    import varfx.train.checkpoint as ck

    real, calls = ck.save_checkpoint, {"n": 0}

    def stopping(model_dir, state):
        real(model_dir, state)
        calls["n"] += 1
        if calls["n"] == n:
            os._exit(3)

    ck.save_checkpoint = stopping


def _nan(rank: int, step: int) -> None:
    import varfx.train.loop as loop

    real, calls = loop.guarded_loss, {"n": 0}

    def poisoned(setup, units, log_f_of, where):
        value = real(setup, units, log_f_of, where)
        calls["n"] += 1
        return value * float("nan") if RANK == rank and calls["n"] == step else value

    loop.guarded_loss = poisoned


def main() -> None:
    if os.environ.get("VARFX_PROBE_READS"):
        _reads(Path(os.environ["VARFX_PROBE_READS"]))
    if os.environ.get("VARFX_PROBE_STOP_AFTER") and RANK == 0:
        _stop_after(int(os.environ["VARFX_PROBE_STOP_AFTER"]))
    if os.environ.get("VARFX_PROBE_NAN"):
        rank, step = os.environ["VARFX_PROBE_NAN"].split(":")
        _nan(int(rank), int(step))
    from varfx.cli import main as varfx_main

    sys.argv[0] = "varfx"
    varfx_main(sys.argv[1:])


if __name__ == "__main__":
    main()
