import os

# One BLAS/OpenMP thread per pytest worker (tests run on small matrices, two at a time).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
