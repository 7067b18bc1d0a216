"""torch.nn.modules.distance's path: the distance layers, resolved from `nanoframe.nn` (see _reexport.py)."""
from nanoframe.nn.modules._reexport import reexport

NAMES = (
    "PairwiseDistance", "CosineSimilarity",
)
__getattr__, __dir__ = reexport(__name__, NAMES)
