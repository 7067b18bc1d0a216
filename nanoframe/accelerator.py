"""torch.accelerator on a CPU-only machine: no accelerator."""


def is_available():
    return False


def device_count():
    return 0


def current_accelerator(check_available=False):
    """None: nanoframe has no accelerator (torch returns None likewise without one)."""
    return None
