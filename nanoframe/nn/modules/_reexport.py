"""The mechanism behind `nanoframe.nn.modules.*`: each file there names the torch.nn.modules
classes that live at its path, and resolves them from `nanoframe.nn` on first access (PEP 562).

Resolving late keeps these paths valid while layers move between files or are added (a class
lands in `nanoframe.nn` and its torch path works without an edit here); a name nanoframe does
not implement raises AttributeError saying so.
"""
import importlib
import sys


def reexport(module_name, names):
    """`__getattr__` and `__dir__` for the module `module_name`, re-exporting `names` of nanoframe.nn."""
    names = tuple(names)

    def __getattr__(name):
        if name not in names:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        nn = importlib.import_module("nanoframe.nn")
        try:
            return getattr(nn, name)
        except AttributeError:
            raise AttributeError(f"{module_name}.{name}: nanoframe.nn has no {name} "
                                 f"(torch.nn.{name} is not implemented in nanoframe)") from None

    def __dir__():
        nn = importlib.import_module("nanoframe.nn")
        return sorted({n for n in names if hasattr(nn, n)} | set(vars(sys.modules[module_name])))

    return __getattr__, __dir__
