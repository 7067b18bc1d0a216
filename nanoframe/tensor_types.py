"""torch's legacy tensor types: `nanoframe.FloatTensor`, `LongTensor`, ... as constructors
(`torch.LongTensor(n)`, `torch.FloatTensor([1, 2])`) and as isinstance checks on the dtype
(`isinstance(x, torch.LongTensor)` is True for an int64 tensor), as in torch."""
from nanoframe import dtypes
from nanoframe.device import check_cpu
from nanoframe.tensor import _TYPE_NAMES, Tensor, legacy_array


class _TensorType(type):
    """The metaclass: calling the type builds a tensor of its dtype, isinstance checks the dtype."""

    def __call__(cls, *args, device=None):
        check_cpu(device)
        if len(args) == 1 and isinstance(args[0], Tensor):
            if args[0].array.dtype != cls.dtype.dtype:  # torch refuses a Tensor of another dtype too
                raise TypeError(f"{cls.__name__}(): expected a tensor of dtype {cls.dtype!r}, got {args[0].dtype!r}; "
                                f"use .to({cls.dtype!r})")
            return args[0]
        return Tensor._make(legacy_array(args, cls.dtype.dtype, cls.__name__), False)

    def __instancecheck__(cls, obj):
        return isinstance(obj, Tensor) and obj.array.dtype == cls.dtype.dtype


def _tensor_type(dtype_name):
    return _TensorType(_TYPE_NAMES[dtype_name], (), {"dtype": dtypes.by_name(dtype_name), "__module__": __name__})


FloatTensor = _tensor_type("float32")
DoubleTensor = _tensor_type("float64")
HalfTensor = _tensor_type("float16")
LongTensor = _tensor_type("int64")
IntTensor = _tensor_type("int32")
ShortTensor = _tensor_type("int16")
CharTensor = _tensor_type("int8")
ByteTensor = _tensor_type("uint8")
BoolTensor = _tensor_type("bool")
