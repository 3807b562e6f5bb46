"""``varfx precompute-ld --dask-scheduler ADDRESS``: the windows as Dask tasks.

Each window is one task.  The task opens ``dataset.h5`` itself and reads only its
window's genotypes (or LD blocks), so nothing but the window plan (index arrays) and
the part file's name crosses the scheduler; it writes its part file
``DATASET/windows.parts/wNNNNNN.h5`` exactly as a local worker process does
(:func:`varfx.stages.precompute._compute_window`, temp file + rename).  The parent
waits on the futures (``as_completed``, into the stage's progress bar) and commits the
parts with the same writer as a local run (of a sharded store, each chromosome's shard
as soon as its windows are back), so the store is the same, a re-run computes only
the missing parts, and a lost worker loses at most its windows in flight
(the scheduler reschedules them on another worker; a window that keeps killing its
workers ends the run with its finished parts kept for a re-run).

The dataset directory must therefore be on a filesystem every worker sees, at the same
path (a shared or network filesystem): a worker that cannot find it, or finds another
``dataset.h5`` there, fails the run with a one-line error.

``ADDRESS`` is a running scheduler (``tcp://host:8786``, or anything
``distributed.Client`` accepts) or ``local:N``, a ``LocalCluster`` of N single-threaded
worker processes on this machine started for the run and closed after it.
dask.distributed is imported only here, inside functions: it is the optional extra
``varfx[dask]``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
import uuid
from pathlib import Path

from ..errors import UserError

#: how a user gets dask.distributed (named in the error when it is missing)
DASK_EXTRA = 'pip install "varfx[dask]"'
#: seconds to wait for a scheduler: an unreachable one is an error after this long,
#: not distributed's default 30 s wait per attempt
CONNECT_TIMEOUT_S = 5
#: seconds to wait for a first worker on a scheduler that has none (workers still being
#: started by a batch queue): then an error, rather than tasks queued for ever
WORKER_WAIT_S = 60
#: test-only fault injection (tests/test_precompute_dask.py): ``INDEX`` or
#: ``INDEX:MARKER``.  The worker computing window INDEX SIGKILLs itself halfway through
#: writing its part file; with MARKER only when the file MARKER does not exist yet (it is
#: created first), so the retry on another worker succeeds.
KILL_ENV = "VARFX_TEST_KILL_WORKER_AT_WINDOW"


def parse_address(address: str):
    """``("local", N)`` for ``local:N``, else ``("remote", address)``; a one-line
    UserError for an empty or malformed address."""
    address = str(address).strip()
    if not address:
        raise UserError("option --dask-scheduler: expected a scheduler address (tcp://HOST:PORT) or local:N, got ''")
    if address.startswith("local:"):
        n = address[len("local:"):]
        if not n.isdigit() or int(n) < 1:
            raise UserError(f"option --dask-scheduler: expected local:N with N >= 1 worker processes, got {address!r}")
        return "local", int(n)
    return "remote", address


def require_distributed():
    """Import dask.distributed, or a one-line UserError naming the extra."""
    try:
        import distributed
    except ImportError:
        raise UserError(f"option --dask-scheduler: dask.distributed is not installed ({DASK_EXTRA})") from None
    return distributed


@contextlib.contextmanager
def dask_client(address: str):
    """A ``distributed.Client`` for ``address`` (``local:N`` starts a LocalCluster),
    closed on exit (the LocalCluster with it)."""
    kind, target = parse_address(address)
    distributed = require_distributed()
    # distributed logs worker deaths, retries and shutdown noise (with tracebacks) at
    # WARNING; the command reports the outcome itself, on one line
    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    cluster = None
    try:
        if kind == "local":
            # one thread per process: the windows run side by side in processes, each
            # with one BLAS thread (distributed's nanny sets OMP_NUM_THREADS=1)
            cluster = distributed.LocalCluster(n_workers=target, threads_per_worker=1, processes=True,
                                               dashboard_address=None, silence_logs=logging.ERROR)
            client = distributed.Client(cluster)
        else:
            try:
                client = distributed.Client(target, timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError, ValueError, TypeError) as exc:
                why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise UserError(f"option --dask-scheduler: cannot reach a Dask scheduler at {target!r} within "
                                f"{CONNECT_TIMEOUT_S} s ({why})") from None
        try:
            yield client
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()
        quiet.setLevel(level)


class WorkersLost(UserError):
    """The cluster lost the workers of a window (or the scheduler): the finished part
    files are kept, so that a re-run computes only the rest."""


def compute_parts_dask(address: str, dataset: Path, parts: Path, todo, params: dict, eig_threshold: float,
                       n_ref: int, truncation, advance, done=None) -> int:
    """Compute the part file of each window in ``todo`` on the Dask cluster at
    ``address``; ``advance(status)`` and ``done(spec)`` are called (in this process) as
    each finishes: ``done`` commits a chromosome's shard once its windows are back.
    Returns the number of workers the cluster had when the windows were submitted."""
    distributed = require_distributed()
    from concurrent.futures import CancelledError

    from distributed.comm.core import CommClosedError

    dataset = Path(dataset).resolve()
    parts = Path(parts).resolve()
    # what the worker checks that its dataset.h5 is the one planned here
    check = {"n_variants": int(params["n_variants"]), "created": str(params["dataset_created"])}
    # a fresh key per run: a long-lived cluster must not answer from a result it holds
    # of an earlier run (whose part file may since have been removed)
    run = uuid.uuid4().hex[:10]
    with dask_client(address) as client:
        n_workers = len(client.scheduler_info().get("workers", {}))
        if n_workers == 0:
            print(f"varfx: the Dask scheduler at {address!r} has no worker yet: waiting up to {WORKER_WAIT_S} s",
                  file=sys.stderr)
            try:
                client.wait_for_workers(1, timeout=WORKER_WAIT_S)
            except TimeoutError:
                raise UserError(f"option --dask-scheduler: the Dask scheduler at {address!r} has no worker (none "
                                f"joined within {WORKER_WAIT_S} s): start some with `dask worker {address}`") from None
            n_workers = len(client.scheduler_info().get("workers", {}))
        futs = {client.submit(_dask_window, str(dataset), check, s, float(eig_threshold), str(parts), int(n_ref),
                              truncation, key=f"varfx-precompute-ld-{run}-w{s.index:06d}", retries=0): s
                for s in todo}
        try:
            for fut in distributed.as_completed(futs):
                s = futs[fut]
                try:
                    fut.result()
                except distributed.KilledWorker:
                    raise WorkersLost(f"window {s.index} (chr{s.chrom}:{s.start}-{s.end}) killed every Dask worker "
                                      "that ran it (out of memory? try a smaller --window-kb/--flank-kb); the "
                                      "finished windows are kept: re-run to compute the rest", path=dataset) from None
                except (CommClosedError, CancelledError) as exc:
                    # the scheduler went away, or cancelled the task (a task's own
                    # OSError, e.g. a read-only parts directory, goes on as it is)
                    raise WorkersLost(f"lost the Dask scheduler at {address!r} ({type(exc).__name__}); the finished "
                                      "windows are kept: re-run to compute the rest", path=dataset) from None
                advance(f"chr{s.chrom}:{s.start // 1000}kb n+={len(s.plus_idx)}")
                if done is not None:
                    done(s)
        finally:
            # an error or Ctrl-C: stop the windows still queued rather than let them run on
            with contextlib.suppress(Exception):
                client.cancel(list(futs))
    return n_workers


# ---------------------------------------------------------------------------------------
# on the worker

_open_lock = threading.Lock()
_opened: dict = {}


def _dask_window(dataset: str, check: dict, spec, eig_threshold, parts_dir, n_ref, truncation) -> int:
    """One window's task on a Dask worker: open ``dataset`` (once per worker process and
    dataset.h5 version) and write the window's part file."""
    from . import precompute

    # One window at a time per process: the worker state (the open dataset.h5 and its
    # LD view) is a module global of precompute, shared by the worker's threads; a
    # worker started with several threads still computes correctly, one window after
    # another (start workers with --nthreads 1 and one process per core instead).
    with _open_lock:
        _open_dataset(Path(dataset), check)
        if not Path(parts_dir).is_dir():
            raise UserError(f"not found on Dask worker {socket.gethostname()}: the dataset directory must be on a "
                            "filesystem every worker sees, at the same path", path=parts_dir)
        _maybe_kill_self(spec.index)
        return precompute._compute_window(spec, eig_threshold, parts_dir, n_ref, truncation)


def _open_dataset(dataset: Path, check: dict) -> None:
    import h5py

    from ..store import DATASET_FILE
    from . import precompute

    path = dataset / DATASET_FILE
    try:
        st = path.stat()
    except OSError:
        raise UserError(f"not found on Dask worker {socket.gethostname()}: the dataset directory must be on a "
                        "filesystem every worker sees, at the same path", path=path) from None
    key = (str(path), st.st_size, st.st_mtime_ns)
    if _opened.get("key") == key:
        return
    old = precompute._worker_state.get("h5")
    if old is not None:
        with contextlib.suppress(Exception):
            old.close()
    precompute._worker_state.clear()
    _opened.clear()
    precompute._worker_init(str(dataset))
    h5: h5py.File = precompute._worker_state["h5"]
    got = {"n_variants": int(h5["variants"]["bp"].shape[0]), "created": str(h5.attrs.get("created", ""))}
    if got != check:
        raise UserError(f"on Dask worker {socket.gethostname()} this is another dataset.h5 than the one planned "
                        f"({got['n_variants']} variants created {got['created']!r}, expected {check['n_variants']} "
                        f"created {check['created']!r}): the workers must see the same file", path=path)
    _opened["key"] = key


def _maybe_kill_self(index: int) -> None:
    spec = os.environ.get(KILL_ENV)
    if not spec:
        return
    target, _, marker = spec.partition(":")
    if int(target) != index:
        return
    if marker:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return  # killed once already: compute it this time
        os.close(fd)
    import signal

    from ..store import h5 as store_h5

    calls = []
    real_guard = store_h5.guard

    def guard_then_die(h):
        # the kill lands with the part's temp file half-written (4 of its arrays), as
        # an out-of-memory kill or a lost node would
        real_guard(h)
        calls.append(1)
        if len(calls) == 4:
            h.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    store_h5.guard = guard_then_die
