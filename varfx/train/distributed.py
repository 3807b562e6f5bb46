"""Data parallelism over torch.distributed when launched by ``torchrun``."""

from __future__ import annotations

import os


class Distributed:
    """With ``WORLD_SIZE`` > 1 in the environment, the process group is initialised (gloo
    on CPU, nccl on CUDA); each rank evaluates every world-th unit of a batch and the
    gradients and losses are summed over ranks before the update.  Only rank 0 writes
    checkpoints, model.json and logs.  With one process everything is a no-op.
    """

    def __init__(self, device):
        import torch.distributed as td

        self.td = td
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.owns_group = False
        self.cuda = str(device).startswith("cuda")
        if self.world > 1 and self.cuda:
            import torch

            # one GPU per process: torchrun sets LOCAL_RANK; "cuda" then means this GPU
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        if self.world > 1 and not td.is_initialized():
            td.init_process_group("nccl" if self.cuda else "gloo")
            self.owns_group = True
        self.is_main = self.rank == 0

    def share(self, units):
        """This rank's part of a batch: every world-th unit."""
        return units[self.rank::self.world] if self.world > 1 else units

    def sum_value(self, value) -> float:
        import torch

        v = float(value.detach()) if torch.is_tensor(value) else float(value)
        if self.world == 1:
            return v
        # nccl reduces GPU tensors only
        t = torch.tensor([v], dtype=torch.float64, device="cuda" if self.cuda else "cpu")
        self.td.all_reduce(t)
        return float(t[0])

    def sum_grads(self, module):
        import torch

        if self.world == 1:
            return
        for p in module.parameters():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            self.td.all_reduce(p.grad)

    def close(self):
        if self.owns_group:
            self.td.barrier()
            self.td.destroy_process_group()


_Distributed = Distributed  # the name it had inside stages/fit.py
