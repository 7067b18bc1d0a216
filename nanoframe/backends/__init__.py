"""`nanoframe.backends` as torch.backends on a CPU-only machine: `cuda`, `cudnn` and `mps` exist so
that their flags can be set (they have no effect), and nothing is available."""
from nanoframe.backends import cuda, cudnn, mps  # noqa: F401
