"""torch.nn.modules.upsampling's path: the upsampling layers, resolved from `nanoframe.nn` (see _reexport.py)."""
from nanoframe.nn.modules._reexport import reexport

NAMES = (
    "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d",
)
__getattr__, __dir__ = reexport(__name__, NAMES)
