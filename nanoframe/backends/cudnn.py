"""torch.backends.cudnn's settable flags (no effect: nanoframe computes on the CPU)."""

enabled = True
benchmark = False
deterministic = False
allow_tf32 = True


def is_available():
    """False: nanoframe has no cuDNN."""
    return False


def version():
    return None
