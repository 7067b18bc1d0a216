"""torch.compile and torch.compiler: nanoframe has no graph compiler, so `compile` returns the
module or function it is given (it already runs NumPy kernels and fused ops), with a one-time note."""
import warnings

_noted = False


def compile(model=None, *, fullgraph=False, dynamic=None, backend="inductor", mode=None, options=None,
            disable=False, **kwargs):
    """torch.compile(model) -> model itself, unchanged (also as `@compile` or `@compile(...)`)."""
    global _noted
    if model is None:
        return lambda fn: compile(fn, fullgraph=fullgraph, dynamic=dynamic, backend=backend, mode=mode,
                                  options=options, disable=disable, **kwargs)
    if not callable(model):
        raise RuntimeError(f"compile(): model must be a Module or a function, got {type(model).__name__}")
    if not _noted and not disable:
        _noted = True
        warnings.warn("nanoframe.compile: nanoframe has no compiler; the module runs as it is", stacklevel=2)
    return model


def disable(fn=None, recursive=True, reason=None):
    """torch.compiler.disable: a decorator that returns the function unchanged."""
    if fn is None:
        return lambda f: f
    return fn


def is_compiling():
    """False: nothing is ever being compiled."""
    return False


def reset():
    """No-op: there are no compiled graphs to clear."""
