"""Devices the CPU way: `nanoframe.device('cpu')` behaves as torch.device on a CPU-only torch.

A device object can name any device type torch knows (so `device('cuda')` can be built, printed
and compared, as in torch), but placing a tensor or a module on anything but the CPU raises one
UnsupportedError saying that nanoframe runs on the CPU.
"""
from nanoframe.errors import UnsupportedError

_TYPES = ("cpu", "cuda", "mps", "xpu", "meta", "hip", "xla", "ipu", "hpu", "mtia", "privateuseone")


class device:
    """torch.device: `device('cpu')`, `device('cpu:0')`, `device('cuda', 1)`, `device(type='cpu')`."""

    __slots__ = ("type", "index")

    def __init__(self, type, index=None):
        if isinstance(type, device):
            if index is not None:
                raise TypeError("device(): an index cannot be given with a device object")
            type, index = type.type, type.index
        elif isinstance(type, int) and not isinstance(type, bool):
            type, index = "cuda", type                  # torch reads a bare ordinal as a CUDA device
        elif not isinstance(type, str):
            raise TypeError(f"device() expects a string such as 'cpu', got {type!r}")
        elif ":" in type:
            if index is not None:
                raise RuntimeError(f"device(): type {type!r} already has an index; do not pass index={index}")
            type, _, idx = type.partition(":")
            if not idx.isdigit():
                raise RuntimeError(f"Invalid device string: {type + ':' + idx!r}")
            index = int(idx)
        if type not in _TYPES:
            raise RuntimeError(f"Expected one of {', '.join(_TYPES)} device type at start of device string: {type!r}")
        if index is not None and (not isinstance(index, int) or index < 0):
            raise RuntimeError(f"Device index must be a non-negative integer, got {index!r}")
        self.type, self.index = type, index

    def __eq__(self, other):
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device(type='{self.type}')" if self.index is None else \
            f"device(type='{self.type}', index={self.index})"

    def __reduce__(self):
        return device, (self.type, self.index)


CPU = device("cpu")


def check_cpu(d):
    """Accept a device argument naming the CPU (None, 'cpu', 'cpu:0', device('cpu')); anything else
    raises one UnsupportedError."""
    if d is None or d is CPU or d == "cpu":
        return
    d = device(d)
    if d.type != "cpu" or d.index not in (None, 0):
        raise UnsupportedError(
            f"nanoframe runs on the CPU only (in float32/float64): device '{d}' is not available; "
            "use device='cpu' (nanoframe.cuda.is_available() is False)"
        )
