"""`torch.nn.functional`'s path: `import nanoframe.nn.functional as F`.

This module IS `nanoframe.functional` (the same module object, registered under both names), so
every function added there is here too and `nanoframe.nn.functional is nanoframe.functional`.
"""
import sys

from nanoframe import functional as _functional

sys.modules[__name__] = _functional
