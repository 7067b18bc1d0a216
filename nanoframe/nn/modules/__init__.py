"""`torch.nn.modules`' paths: `nanoframe.nn.modules.linear.Linear`, `...conv.Conv2d`,
`...container.Sequential`, ... One file per torch submodule, each naming its classes and resolving
them from `nanoframe.nn` on first access; the package re-exports all of them, as torch.nn.modules does.
"""
import importlib

from nanoframe.nn.modules._reexport import reexport

SUBMODULES = (
    "module", "linear", "conv", "container", "activation", "loss", "batchnorm", "normalization",
    "instancenorm", "dropout", "sparse", "rnn", "pooling", "transformer", "flatten", "padding",
    "upsampling", "pixelshuffle", "distance",
)
NAMES = tuple(name for sub in SUBMODULES for name in importlib.import_module(f"{__name__}.{sub}").NAMES)
__getattr__, __dir__ = reexport(__name__, NAMES)
