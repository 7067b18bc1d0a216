"""`torch.onnx`'s path. nanoframe has no ONNX exporter: `export` says so in one line and names
what nanoframe does write (safetensors weights, Hugging Face GPT-2 folders), instead of a code
path that would produce a file some runtime then reads differently."""
from nanoframe.errors import NanoframeError

_INSTEAD = ("ONNX export is not supported by nanoframe; save the weights instead with "
            "nanoframe.save_safetensors(model.state_dict(), path) (a GPT also as a Hugging Face folder with "
            "model.to_hf(folder)), load them into the same model in PyTorch and export from there")


def export(*args, **kwargs):
    """Always raises: ONNX export is not supported (the message says what to use instead)."""
    raise NanoframeError(_INSTEAD)


def dynamo_export(*args, **kwargs):
    """Always raises, as `export`."""
    raise NanoframeError(_INSTEAD)


def is_in_onnx_export():
    """False: nanoframe never runs a model inside an ONNX export."""
    return False
