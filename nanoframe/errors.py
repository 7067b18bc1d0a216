"""The errors a user can cause, as opposed to bugs in nanoframe.

Every error that a bad file, a bad argument or bad data can cause is a `NanoframeError` (a
`ValueError`, so `except ValueError` keeps working). Its message is one line that names the file,
field or value at fault. The `nanoframe` command prints exactly these as one line with exit code 2;
anything else is a bug in nanoframe and keeps its traceback.
"""


class NanoframeError(ValueError):
    """A user error: a bad file, option, value or dataset. The message names what is wrong."""


class DataError(NanoframeError):
    """A problem with the user's data: missing files, an empty corpus, a too-short split, a bad meta.json."""


class CheckpointError(NanoframeError):
    """A checkpoint or run folder that is missing, incomplete, damaged, or does not fit the model."""


class TokenizerError(NanoframeError):
    """A tokenizer file that is missing, malformed, or describes a vocabulary nanoframe refuses."""


class ConfigError(NanoframeError):
    """A configuration value out of its type or range (model, training, Hugging Face config.json)."""


class TrainingError(NanoframeError):
    """Training cannot go on (a non-finite loss or gradient); the message names the step."""


class UnsupportedError(NanoframeError, RuntimeError):
    """Something nanoframe does not do: a CUDA/MPS device, bfloat16. Also a RuntimeError, as torch
    raises for an unavailable device."""


def bounded(text, limit=300):
    """`text` cut to `limit` characters with an ellipsis: error messages quote values from files,
    and a crafted file must not print megabytes."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
