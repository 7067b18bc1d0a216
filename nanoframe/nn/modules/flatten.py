"""torch.nn.modules.flatten's path: Flatten and Unflatten, resolved from `nanoframe.nn` (see _reexport.py)."""
from nanoframe.nn.modules._reexport import reexport

NAMES = (
    "Flatten", "Unflatten",
)
__getattr__, __dir__ = reexport(__name__, NAMES)
