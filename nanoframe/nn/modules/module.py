"""torch.nn.modules.module's path: the Module base class, resolved from `nanoframe.nn` (see _reexport.py)."""
from nanoframe.nn.modules._reexport import reexport

NAMES = (
    "Module",
)
__getattr__, __dir__ = reexport(__name__, NAMES)
