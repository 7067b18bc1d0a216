"""torch.nn.modules.dropout's path: the dropout layers, resolved from `nanoframe.nn` (see _reexport.py)."""
from nanoframe.nn.modules._reexport import reexport

NAMES = (
    "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout",
)
__getattr__, __dir__ = reexport(__name__, NAMES)
