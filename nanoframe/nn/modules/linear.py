"""torch.nn.modules.linear's path: Linear and Identity, resolved from `nanoframe.nn` (see _reexport.py)."""
from nanoframe.nn.modules._reexport import reexport

NAMES = (
    "Bilinear", "Identity", "LazyLinear", "Linear",
)
__getattr__, __dir__ = reexport(__name__, NAMES)
