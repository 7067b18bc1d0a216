"""torch.nn.modules.transformer's path: the transformer layers, resolved from `nanoframe.nn` (see _reexport.py)."""
from nanoframe.nn.modules._reexport import reexport

NAMES = (
    "Transformer", "TransformerEncoder", "TransformerDecoder", "TransformerEncoderLayer",
    "TransformerDecoderLayer",
)
__getattr__, __dir__ = reexport(__name__, NAMES)
