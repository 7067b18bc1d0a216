"""Random numbers: `Generator` objects (torch.Generator) and the seeded default one the whole library
draws from (`nanoframe.manual_seed`).

A Generator wraps a NumPy `np.random.Generator` (PCG64), available as `generator.rng` for code
that draws NumPy arrays (init, dropout, a DataLoader's shuffling). Its state is a JSON-serialisable
dict (not torch's byte tensor), so checkpoints can store it as text.
"""
import numpy as np

from nanoframe.device import CPU, check_cpu


class Generator:
    """A seeded random number generator: `g = nanoframe.Generator().manual_seed(0)`, then
    `nanoframe.randn(3, generator=g)`, `randperm(n, generator=g)`, `multinomial(p, 1, generator=g)`."""

    def __init__(self, device="cpu"):
        check_cpu(device)
        self._initial_seed = 67280421310721  # torch's default seed for a fresh Generator
        self.rng = np.random.default_rng(self._initial_seed)

    def manual_seed(self, seed):
        """Reseed; returns self (as torch)."""
        seed = int(seed)
        if seed < 0:
            seed &= (1 << 64) - 1  # torch accepts negative seeds as their 64-bit two's complement
        self._initial_seed = seed
        self.rng = np.random.default_rng(seed)
        return self

    def seed(self):
        """Reseed from the operating system's entropy; returns the new seed."""
        seed = int(np.random.SeedSequence().entropy) & ((1 << 63) - 1)
        self.manual_seed(seed)
        return seed

    def initial_seed(self):
        return self._initial_seed

    def get_state(self):
        """The generator's state as a JSON-serialisable dict (for an exact resume)."""
        return self.rng.bit_generator.state

    def set_state(self, state):
        """Restore a state from get_state(); returns self."""
        self.rng.bit_generator.state = state
        return self

    @property
    def device(self):
        return CPU


_default = Generator().manual_seed(0)


def manual_seed(seed):
    """Reseed the library's default generator (init, dropout, randn, sampling draw from it);
    returns it, as torch.manual_seed."""
    return _default.manual_seed(seed)


def seed():
    """Reseed the default generator from the operating system's entropy; returns the seed."""
    return _default.seed()


def initial_seed():
    return _default.initial_seed()


def default_generator():
    """The default generator's NumPy Generator (what library code draws from)."""
    return _default.rng


def rng_of(generator):
    """The NumPy Generator to draw from: `generator`'s, or the default's when it is None."""
    if generator is None:
        return _default.rng
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a nanoframe.Generator, got {type(generator).__name__}")
    return generator.rng


def get_rng_state():
    """The default generator's state as a JSON-serialisable dict (for exact resume)."""
    return _default.get_state()


def set_rng_state(state):
    """Restore a state returned by `get_rng_state`."""
    _default.set_state(state)
