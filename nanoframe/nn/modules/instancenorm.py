"""torch.nn.modules.instancenorm's path: instance normalization, resolved from `nanoframe.nn` (see _reexport.py)."""
from nanoframe.nn.modules._reexport import reexport

NAMES = (
    "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
)
__getattr__, __dir__ = reexport(__name__, NAMES)
