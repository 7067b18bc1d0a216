"""The one seeded random generator the whole library draws from (`nanoframe.manual_seed`)."""
import numpy as np

_generator = np.random.default_rng(0)


def manual_seed(seed):
    """Reseed the library's generator (init, dropout, randn, sampling all draw from it)."""
    global _generator
    _generator = np.random.default_rng(int(seed))
    return _generator


def default_generator():
    """The current numpy Generator."""
    return _generator


def get_rng_state():
    """The generator's state as a JSON-serialisable dict (for exact resume)."""
    return _generator.bit_generator.state


def set_rng_state(state):
    """Restore a state returned by `get_rng_state`."""
    _generator.bit_generator.state = state
