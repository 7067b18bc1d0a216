"""torch.nn.modules.batchnorm's path: batch normalization, resolved from `nanoframe.nn` (see _reexport.py)."""
from nanoframe.nn.modules._reexport import reexport

NAMES = (
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm",
)
__getattr__, __dir__ = reexport(__name__, NAMES)
