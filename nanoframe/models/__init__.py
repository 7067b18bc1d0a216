"""Model definitions built on nanoframe.nn."""
from nanoframe.models.gpt import GPT, GPTConfig

__all__ = ["GPT", "GPTConfig"]
