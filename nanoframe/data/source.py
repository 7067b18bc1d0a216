"""The one interface every batch source of the trainer implements (token files, instructions).

The trainer draws training batches with `get_batch`, evaluates on the fixed `val_batches`, and
stores `state_dict()` (the sampler's RNG) in every checkpoint so a resumed run draws the same
batches. Subclasses set `block_size`, `batch_size` and `rng` (a numpy Generator) and define
`get_batch`, `val_batches` and `describe`.

Data-parallel training (nanoframe.distributed) calls `shard(rank, world_size)`: every rank then
draws the same global batch of batch_size * world_size rows from the same sampler state and keeps
rows [rank * batch_size, (rank + 1) * batch_size), so N ranks see exactly the rows one process
with batch N * batch_size sees, and the sampler state is the same on every rank.
"""
import numpy as np

from nanoframe.errors import CheckpointError


class BatchSource:
    """Base class: (x, y) int64 batches of shape (batch_size, block_size)."""

    block_size: int
    batch_size: int
    rng: np.random.Generator
    rank, world_size = 0, 1

    def shard(self, rank, world_size):
        """Take rank `rank`'s share of every global batch of a `world_size`-rank job."""
        if not 0 <= rank < world_size:
            raise ValueError(f"shard: rank must be in [0, {world_size}), got {rank}")
        self.rank, self.world_size = int(rank), int(world_size)
        return self

    def _own_rows(self, rows):
        """This rank's slice of a global batch's rows (empty for a rank past a short last batch)."""
        B = self.batch_size
        return rows[self.rank * B:(self.rank + 1) * B]

    def get_batch(self, split="train"):
        """A random (x, y) batch from `split`."""
        raise NotImplementedError  # abstract: TokenData and InstructionData define it

    def val_batches(self, max_batches=None, split="val"):
        """The fixed list of (x, y) evaluation batches (the same at every eval)."""
        raise NotImplementedError  # abstract: TokenData and InstructionData define it

    def describe(self):
        """One line saying what the data is, for the log."""
        raise NotImplementedError  # abstract: TokenData and InstructionData define it

    def state_dict(self):
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state, where="checkpoint"):
        """Restore the sampler; a malformed state (from a damaged state.json) raises CheckpointError."""
        try:
            rng = np.random.default_rng()
            rng.bit_generator.state = state["rng"]
        except (TypeError, KeyError, ValueError, OverflowError) as e:
            raise CheckpointError(f"{where}: field 'data' is not a batch sampler state ({type(e).__name__})") from None
        self.rng.bit_generator.state = state["rng"]
