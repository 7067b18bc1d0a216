"""`torch.utils.data`'s path: datasets, samplers, DataLoader, default_collate, random_split.

Batches are nanoframe Tensors with torch's dtypes (int labels int64, Python floats float64,
NumPy data keep their dtype). Random orders come from nanoframe's library generator or the
`generator` given (see sampler.py); they are reproducible, but not the same orders as torch's.
"""
from nanoframe.utils.data.collate import default_collate, default_convert
from nanoframe.utils.data.dataloader import DataLoader, get_worker_info
from nanoframe.utils.data.dataset import (
    ChainDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    StackDataset,
    Subset,
    TensorDataset,
    random_split,
)
from nanoframe.utils.data.sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)

__all__ = [
    "BatchSampler",
    "ChainDataset",
    "ConcatDataset",
    "DataLoader",
    "Dataset",
    "IterableDataset",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "StackDataset",
    "Subset",
    "SubsetRandomSampler",
    "TensorDataset",
    "WeightedRandomSampler",
    "default_collate",
    "default_convert",
    "get_worker_info",
    "random_split",
]
