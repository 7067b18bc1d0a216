"""torch.nn.modules.sparse's path: Embedding, resolved from `nanoframe.nn` (see _reexport.py)."""
from nanoframe.nn.modules._reexport import reexport

NAMES = (
    "Embedding", "EmbeddingBag",
)
__getattr__, __dir__ = reexport(__name__, NAMES)
