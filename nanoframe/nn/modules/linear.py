"""torch.nn.modules.linear's path: Linear and Identity, resolved from `nanoframe.nn` (see _reexport.py)."""
from nanoframe.nn.modules._reexport import reexport

NAMES = (
    "Bilinear", "Identity", "LazyLinear", "Linear",
)
_reexported, __dir__ = reexport(__name__, NAMES)


def __getattr__(name):
    # torch keeps MultiheadAttention.out_proj's class here and not in torch.nn (code that loads a
    # saved Transformer allow-lists it by this path)
    if name == "NonDynamicallyQuantizableLinear":
        from nanoframe.nn.transformer import NonDynamicallyQuantizableLinear
        return NonDynamicallyQuantizableLinear
    return _reexported(name)
