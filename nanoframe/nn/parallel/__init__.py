"""torch.nn.parallel's import paths, the CPU way.

    from nanoframe.nn.parallel import DistributedDataParallel as DDP   # as nanoGPT's train.py does

DistributedDataParallel is nanoframe.distributed's (MPI; mpi4py is imported only by
init_process_group, never by these imports). DataParallel is what it is on a CPU-only torch: with
no GPU to scatter over it keeps device_ids empty and its forward calls the wrapped module.
"""
from nanoframe.distributed import DistributedDataParallel
from nanoframe.nn.module import Module

__all__ = ["DataParallel", "DistributedDataParallel"]


class DataParallel(Module):
    """torch.nn.DataParallel on a machine without GPUs: a pass-through to `module` (whose state_dict
    keys gain the "module." prefix, as in torch). device_ids, output_device and dim are accepted
    and ignored, as torch ignores them when no CUDA device exists."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0):
        super().__init__()
        self.module = module
        self.device_ids = []

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)
