"""torch.utils.tensorboard's path: `SummaryWriter` writes TensorBoard event files (scalars and text)
with the standard library alone (no tensorboard, protobuf or TensorFlow package needed to write)."""
from nanoframe.utils.tensorboard.writer import SummaryWriter

__all__ = ["SummaryWriter"]
