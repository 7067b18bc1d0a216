"""torch.nn.modules.container's path: the containers, resolved from `nanoframe.nn` (see _reexport.py)."""
from nanoframe.nn.modules._reexport import reexport

NAMES = (
    "Container", "Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict",
)
__getattr__, __dir__ = reexport(__name__, NAMES)
