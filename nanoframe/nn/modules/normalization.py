"""torch.nn.modules.normalization's path: LayerNorm, RMSNorm and GroupNorm, resolved from `nanoframe.nn` (see _reexport.py)."""
from nanoframe.nn.modules._reexport import reexport

NAMES = (
    "LocalResponseNorm", "LayerNorm", "GroupNorm", "RMSNorm",
)
__getattr__, __dir__ = reexport(__name__, NAMES)
