"""Data parallelism over torch.distributed when launched by ``torchrun``.

Besides summing losses and gradients, this module decides how the processes of one
run stop together.  A process that hits bad input (a garbled window of its share, a
non-finite loss) must not leave the others blocked in a collective, and the user must
see one line, not a traceback per process:

- at the points where the processes meet anyway (after the set-up, the loss of every
  step, the validation loss, the checkpoint read) each one adds an "I failed" flag to
  the collective; when any flag is set every process raises, rank 0 with the failing
  rank's message (:meth:`Distributed.agree`), the others quietly
  (:class:`QuietStop`: exit 1, nothing printed, the message is rank 0's to print);
- a process that fails elsewhere (rank 0's disk filling up while it writes a
  checkpoint) publishes its message in the process group's key-value store before it
  exits; the others see their next collective fail (gloo notices a closed peer at
  once) and stop quietly when the message is there (the failed process printed it),
  else with a one-line error of their own;
- ``torchrun`` itself stops the remaining workers (SIGTERM) once one exits non-zero.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from ..errors import UserError

ERROR_KEY = "varfx/error"  # the first failing process's message, in the group's store


class QuietStop(UserError):
    """Another process reports this failure: exit 1 without printing it again."""


class Distributed:
    """With ``WORLD_SIZE`` > 1 in the environment, the process group is initialised (gloo
    on CPU, nccl on CUDA) and :attr:`device` is ``cuda:LOCAL_RANK`` on CUDA (one GPU per
    process, as torchrun starts them on each node).  Each rank evaluates every
    world-th unit of a batch and the gradients and losses are summed over ranks before
    the update.  Only the global rank 0 writes checkpoints, model.json and logs, and
    reads the checkpoint (it is sent to the others, so the model directory need not be
    on a filesystem the other nodes see).  With one process everything is a no-op.
    """

    def __init__(self, device):
        import torch.distributed as td

        self.td = td
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.owns_group = False
        self.cuda = str(device).startswith("cuda")
        self.device = device
        if self.world > 1 and self.cuda:
            import torch

            # one GPU per process: torchrun sets LOCAL_RANK (the rank within its node)
            torch.cuda.set_device(self.local_rank)
            self.device = f"cuda:{self.local_rank}"
        if self.world > 1 and not td.is_initialized():
            td.init_process_group("nccl" if self.cuda else "gloo")
            self.owns_group = True
        if self.world > 1 and self.owns_group:
            # torchrun sends SIGTERM to the other workers when one fails: unwind (the
            # model directory's clean-up runs) instead of dying mid-write
            signal.signal(signal.SIGTERM, _interrupt)
        self.is_main = self.rank == 0

    def share(self, units):
        """This rank's part of a batch: every world-th unit."""
        return units[self.rank::self.world] if self.world > 1 else units

    # -- stopping together ---------------------------------------------------------

    def agree(self, error: BaseException | None) -> None:
        """A meeting point: raise on every rank when ``error`` is set on any.

        Rank 0 raises a UserError with the first failing rank's message (naming it);
        the others raise :class:`QuietStop`."""
        if self.world == 1:
            if error is not None:
                raise error
            return
        import torch

        flag = torch.tensor([0.0 if error is None else 1.0], dtype=torch.float64, device=self._dev())
        self._collective(self.td.all_reduce, flag)
        if float(flag[0]) > 0:
            self._raise_agreed(error)

    def _raise_agreed(self, error):
        messages = [None] * self.world
        mine = None if error is None else _one_line(error)
        self._collective(self.td.all_gather_object, messages, mine)
        first = next(r for r, m in enumerate(messages) if m is not None)
        text = messages[first] + (f" (rank {first} of {self.world})" if first != 0 else "")
        if self.is_main:
            raise UserError(text)
        raise QuietStop(text)

    def publish(self, error: BaseException) -> None:
        """Leave this rank's message where the other ranks look when a collective fails
        (the first message wins)."""
        if self.world == 1 or isinstance(error, QuietStop):
            return
        store = self._store()
        if store is not None:
            try:
                store.compare_set(ERROR_KEY, "", f"{_one_line(error)} (rank {self.rank} of {self.world})")
            except Exception:  # noqa: BLE001 - the store may be gone with rank 0
                pass

    def _store(self):
        try:
            from torch.distributed.distributed_c10d import _get_default_store

            return _get_default_store()
        except Exception:  # noqa: BLE001 - no group, or a torch without the helper
            return None

    def _collective(self, fn, *args):
        try:
            return fn(*args)
        except RuntimeError as exc:
            # another process left the group (it failed, or was killed): stop with its
            # message if it left one
            message = self._published()
            if message is not None:
                raise QuietStop(message) from None
            raise UserError(f"rank {self.rank} of {self.world}: another process of this torchrun job stopped "
                            f"({_one_line(exc)}); see its output above") from None

    def _published(self, wait: float = 2.0) -> str | None:
        store = self._store()
        if store is None:
            return None
        deadline = time.monotonic() + wait
        while True:
            try:
                if store.check([ERROR_KEY]):
                    value = store.get(ERROR_KEY).decode()
                    return value or None
            except Exception:  # noqa: BLE001 - the store lived in a process that is gone
                return None
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def _dev(self):
        # nccl reduces GPU tensors only
        return self.device if self.cuda else "cpu"

    # -- sums ----------------------------------------------------------------------

    def sum_value(self, value, error: BaseException | None = None) -> float:
        """``value`` summed over ranks; when ``error`` is set on any rank, every rank
        raises instead (:meth:`agree`), in the same collective."""
        import torch

        v = 0.0 if error is not None else (float(value.detach()) if torch.is_tensor(value) else float(value))
        if self.world == 1:
            if error is not None:
                raise error
            return v
        t = torch.tensor([v, 0.0 if error is None else 1.0], dtype=torch.float64, device=self._dev())
        self._collective(self.td.all_reduce, t)
        if float(t[1]) > 0:
            self._raise_agreed(error)
        return float(t[0])

    def sum_grads(self, module):
        import torch

        if self.world == 1:
            return
        for p in module.parameters():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            self._collective(self.td.all_reduce, p.grad)

    def from_main(self, read):
        """``read()`` on rank 0, its result sent to every rank (an error there raised on
        every rank, as :meth:`agree` does)."""
        if self.world == 1:
            return read()
        box = [None, None]
        if self.is_main:
            try:
                box[0] = read()
            except UserError as exc:
                box[1] = _one_line(exc)
        self._collective(self.td.broadcast_object_list, box, 0)
        if box[1] is not None:
            if self.is_main:
                raise UserError(box[1])
            raise QuietStop(box[1])
        return box[0]

    def close(self):
        if self.owns_group:
            self._collective(self.td.barrier)
            self.td.destroy_process_group()
            self.owns_group = False
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def wait_then_exit(self):
        """A rank that stops quietly: wait until rank 0 (which prints the message and
        cleans up) has gone, so that torchrun, which stops every worker as soon as one
        exits non-zero, does not cut rank 0 short.  Rank 0 never joins this barrier;
        its exit ends it (gloo notices at once; otherwise torchrun's SIGTERM does)."""
        if self.world == 1 or self.is_main or not self.owns_group:
            return
        signal.signal(signal.SIGTERM, _exit_now)
        try:
            self.td.barrier()
        except Exception:  # noqa: BLE001 - the expected end: rank 0 has exited
            pass


def _one_line(exc: BaseException) -> str:
    return str(exc).replace("\n", " ")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _exit_now(signum, frame):
    sys.stderr.flush()
    os._exit(1)


_Distributed = Distributed  # the name it had inside stages/fit.py
