"""`nanoframe.cuda` as torch.cuda on a machine without a GPU: nothing is available, the seeding
and synchronisation calls are no-ops, and asking for a device raises one clear error."""
from nanoframe.errors import UnsupportedError


def is_available():
    """False: nanoframe runs on the CPU."""
    return False


def device_count():
    return 0


def is_bf16_supported(including_emulation=True):
    return False


def manual_seed(seed):
    """No-op (there is no CUDA generator); seed the CPU with nanoframe.manual_seed."""


def manual_seed_all(seed):
    """No-op (there is no CUDA generator)."""


def synchronize(device=None):
    """No-op: CPU ops finish before they return."""


def empty_cache():
    """No-op: there is no CUDA caching allocator."""


def current_device():
    raise UnsupportedError("nanoframe runs on the CPU only: there is no current CUDA device")


def get_device_name(device=None):
    raise UnsupportedError("nanoframe runs on the CPU only: there is no CUDA device")


from nanoframe.cuda import amp  # noqa: E402,F401  torch.cuda.amp.GradScaler / autocast
