"""torch.nn.modules.pixelshuffle's path: PixelShuffle, resolved from `nanoframe.nn` (see _reexport.py)."""
from nanoframe.nn.modules._reexport import reexport

NAMES = (
    "PixelShuffle", "PixelUnshuffle",
)
__getattr__, __dir__ = reexport(__name__, NAMES)
