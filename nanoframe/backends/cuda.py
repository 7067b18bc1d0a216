"""torch.backends.cuda's settable flags (no effect: nanoframe computes on the CPU)."""


class _MatmulFlags:
    """`backends.cuda.matmul.allow_tf32 = True` and the reduced-precision flags, stored only."""

    def __init__(self):
        self.allow_tf32 = False
        self.allow_fp16_reduced_precision_reduction = True
        self.allow_bf16_reduced_precision_reduction = True


matmul = _MatmulFlags()


def is_built():
    """False: nanoframe has no CUDA backend."""
    return False
