"""torch.backends.mps on a machine without Apple's GPU backend."""


def is_available():
    return False


def is_built():
    return False
