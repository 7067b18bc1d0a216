"""`torch.utils`' path; `nanoframe.utils.data` holds the datasets, samplers and DataLoader."""
from nanoframe.utils import data

__all__ = ["data"]
