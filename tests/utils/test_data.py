"""nanoframe.utils.data against torch.utils.data: default_collate's types and values, the batches
of every deterministic DataLoader configuration, samplers, splits and argument checks.

Random orders cannot match torch's (torch.randperm and NumPy's permutation are different
algorithms), so for shuffling the properties are tested instead: every pass is a permutation,
a seed reproduces the orders, passes differ, and generator=None follows nanoframe.manual_seed."""
import collections
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nanoframe
from nanoframe.tensor import Tensor
from nanoframe.utils import data as nfdata

torch = pytest.importorskip("torch")
tdata = torch.utils.data

Point = collections.namedtuple("Point", "x y")


def as_numpy(value):
    """torch or nanoframe output -> plain Python/NumPy, with each tensor's dtype kept."""
    if isinstance(value, Tensor):
        return ("tensor", value.array.dtype.name, value.array.tolist())
    if isinstance(value, torch.Tensor):
        return ("tensor", value.numpy().dtype.name, value.numpy().tolist())
    if isinstance(value, dict):
        return (type(value).__name__, {k: as_numpy(v) for k, v in value.items()})
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return (type(value).__name__, [as_numpy(v) for v in value])
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [as_numpy(v) for v in value])
    return value


def torch_sample(sample):
    """The same sample with nanoframe Tensors replaced by torch tensors."""
    if isinstance(sample, Tensor):
        return torch.from_numpy(sample.array.copy())
    if isinstance(sample, dict):
        return type(sample)((k, torch_sample(v)) for k, v in sample.items())
    if isinstance(sample, tuple) and hasattr(sample, "_fields"):
        return type(sample)(*(torch_sample(v) for v in sample))
    if isinstance(sample, (list, tuple)):
        return type(sample)(torch_sample(v) for v in sample)
    return sample


_leaf = (st.integers(-5, 5) | st.floats(-3, 3) | st.booleans() | st.text(max_size=3)
         | st.sampled_from([np.float32(1.5), np.int64(3), np.float64(-2.0), np.bool_(True)])
         | st.sampled_from([np.arange(3, dtype=np.int32), np.ones((2, 2), np.float32), np.zeros(2, np.float64)])
         | st.sampled_from([nanoframe.tensor([1.0, 2.0]), nanoframe.tensor(np.arange(4).reshape(2, 2))]))
_structure = st.recursive(_leaf, lambda kids: st.tuples(kids, kids) | st.lists(kids, min_size=1, max_size=3)
                          | st.dictionaries(st.sampled_from("abc"), kids, min_size=1, max_size=3)
                          | st.builds(Point, kids, kids)
                          | st.dictionaries(st.sampled_from("xy"), kids, min_size=1).map(collections.OrderedDict),
                          max_leaves=6)


@settings(max_examples=150, deadline=None)
@given(sample=_structure, n=st.integers(1, 3))
def test_default_collate_matches_torch(sample, n):
    batch = [sample] * n
    assert as_numpy(nfdata.default_collate(batch)) == as_numpy(tdata.default_collate([torch_sample(s) for s in batch]))


@settings(max_examples=80, deadline=None)
@given(sample=_structure)
def test_default_convert_matches_torch(sample):
    assert as_numpy(nfdata.default_convert(sample)) == as_numpy(tdata.default_convert(torch_sample(sample)))


def test_collate_errors_as_torch():
    with pytest.raises(RuntimeError, match="equal size"):
        nfdata.default_collate([[1, 2], [3]])
    with pytest.raises(TypeError, match="found <class 'object'>"):
        nfdata.default_collate([object()])
    with pytest.raises(TypeError, match="found <U1"):
        nfdata.default_collate([np.array(["a"])])


class Squares(nfdata.Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return {"x": np.full(3, i, np.float32), "label": i % 3, "weight": i / 4}


class TorchSquares(tdata.Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"x": np.full(3, i, np.float32), "label": i % 3, "weight": i / 4}


@pytest.mark.parametrize("kw", [
    dict(),
    dict(batch_size=4),
    dict(batch_size=4, drop_last=True),
    dict(batch_size=None),
    dict(batch_size=3, num_workers=2),  # runs in-process, the same batches
    dict(sampler=[9, 0, 4, 4, 2]),
    dict(batch_sampler=[[1, 2], [0], [9, 8, 7]]),
    dict(batch_size=2, collate_fn=lambda samples: [s["label"] for s in samples]),
])
def test_deterministic_batches_match_torch(kw):
    ours = list(nfdata.DataLoader(Squares(10), **kw))
    theirs = list(tdata.DataLoader(TorchSquares(10), **kw))
    assert as_numpy(ours) == as_numpy(theirs)
    assert len(nfdata.DataLoader(Squares(10), **kw)) == len(tdata.DataLoader(TorchSquares(10), **kw))


def test_tensor_dataset_batches_have_torchs_dtypes():
    X = nanoframe.tensor(np.arange(12, dtype=np.float32).reshape(6, 2))
    y = nanoframe.tensor(np.array([0, 1, 2, 0, 1, 2]))
    batches = list(nfdata.DataLoader(nfdata.TensorDataset(X, y), batch_size=4))
    theirs = list(tdata.DataLoader(tdata.TensorDataset(torch.from_numpy(X.array), torch.from_numpy(y.array)),
                                   batch_size=4))
    assert as_numpy(batches) == as_numpy(theirs)
    xb, yb = batches[0]
    assert isinstance(xb, Tensor) and xb.dtype == np.float32 and yb.dtype == np.int64
    with pytest.raises(AssertionError, match="Size mismatch"):
        nfdata.TensorDataset(X, nanoframe.tensor([1, 2]))


def _orders(loader, passes=3):
    return [[int(v) for batch in loader for v in batch["label_id"].tolist()] for _ in range(passes)]


class Ids(nfdata.Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"label_id": i}


def test_shuffle_properties_with_a_seeded_generator():
    n = 37
    orders = _orders(nfdata.DataLoader(Ids(n), batch_size=5, shuffle=True, generator=np.random.default_rng(7)))
    assert all(sorted(o) == list(range(n)) for o in orders)  # each pass a permutation
    assert orders[0] != orders[1] != orders[2]  # a new order every pass
    again = _orders(nfdata.DataLoader(Ids(n), batch_size=5, shuffle=True, generator=np.random.default_rng(7)))
    assert again == orders  # the seed reproduces them
    other = _orders(nfdata.DataLoader(Ids(n), batch_size=5, shuffle=True, generator=np.random.default_rng(8)))
    assert other != orders

    class Generator:  # the shape of a nanoframe Generator: it wraps a NumPy Generator
        def __init__(self, seed):
            self._rng = np.random.default_rng(seed)

    assert _orders(nfdata.DataLoader(Ids(n), batch_size=5, shuffle=True, generator=Generator(7))) == orders
    with pytest.raises(TypeError, match="generator must be .* got torch.*Generator"):
        list(nfdata.DataLoader(Ids(n), shuffle=True, generator=torch.Generator()))


def test_shuffle_without_generator_follows_manual_seed():
    loader = nfdata.DataLoader(Ids(20), batch_size=6, shuffle=True)
    nanoframe.manual_seed(3)
    first = _orders(loader, 2)
    nanoframe.manual_seed(3)
    assert _orders(loader, 2) == first
    nanoframe.manual_seed(4)
    assert _orders(loader, 2) != first


def test_random_sampler_options():
    data = list(range(10))
    g = np.random.default_rng(0)
    with_replacement = list(nfdata.RandomSampler(data, replacement=True, num_samples=75, generator=g))
    assert len(with_replacement) == 75 and set(with_replacement) <= set(data) and len(set(with_replacement)) < 75
    more = list(nfdata.RandomSampler(data, num_samples=25, generator=g))
    assert sorted(more[:10]) == sorted(more[10:20]) == data and len(set(more[20:])) == 5
    assert len(nfdata.RandomSampler(data, num_samples=25)) == 25 == len(tdata.RandomSampler(data, num_samples=25))
    for kw, err in [(dict(replacement=1), TypeError), (dict(num_samples=0), ValueError),
                    (dict(num_samples=2.5), ValueError)]:
        with pytest.raises(err):
            nfdata.RandomSampler(data, **kw)
        with pytest.raises(err):
            tdata.RandomSampler(data, **kw)
    sub = list(nfdata.SubsetRandomSampler([3, 5, 7, 9], generator=g))
    assert sorted(sub) == [3, 5, 7, 9]


def test_weighted_random_sampler():
    g = np.random.default_rng(0)
    draws = list(nfdata.WeightedRandomSampler([0.0, 1.0, 3.0], 4000, generator=g))
    counts = np.bincount(draws, minlength=3)
    assert counts[0] == 0 and abs(counts[2] / counts[1] - 3.0) < 0.3
    unique = list(nfdata.WeightedRandomSampler([1.0, 1.0, 5.0, 1.0], 4, replacement=False, generator=g))
    assert sorted(unique) == [0, 1, 2, 3]
    with pytest.raises(RuntimeError, match="without replacement"):
        nfdata.WeightedRandomSampler([1.0, 0.0], 2, replacement=False)
    with pytest.raises(ValueError, match="num_samples"):
        nfdata.WeightedRandomSampler([1.0], 0)


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("batch_size", [1, 3, 10, 11])
def test_batch_sampler_matches_torch(batch_size, drop_last):
    sampler = [4, 1, 7, 0, 9, 2, 2, 8, 5, 3]
    ours = nfdata.BatchSampler(sampler, batch_size, drop_last)
    theirs = tdata.BatchSampler(sampler, batch_size, drop_last)
    assert list(ours) == list(theirs) and len(ours) == len(theirs)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(0, 60), parts=st.lists(st.integers(1, 10), min_size=1, max_size=5))
def test_random_split_sizes_match_torch(n, parts):
    fractions = [p / sum(parts) for p in parts]
    if not (abs(sum(fractions) - 1) < 1e-9 and sum(fractions) <= 1):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = nfdata.random_split(list(range(n)), fractions, generator=np.random.default_rng(0))
        theirs = tdata.random_split(list(range(n)), fractions, generator=torch.Generator().manual_seed(0))
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    assert sorted(i for s in ours for i in s.indices) == list(range(n))


def test_random_split_lengths_and_errors():
    subsets = nfdata.random_split(range(10), [3, 7], generator=np.random.default_rng(1))
    assert [len(s) for s in subsets] == [3, 7]
    assert sorted(list(subsets[0]) + list(subsets[1][i] for i in range(7))) == list(range(10))
    again = nfdata.random_split(range(10), [3, 7], generator=np.random.default_rng(1))
    assert again[0].indices == subsets[0].indices
    with pytest.raises(ValueError, match="Sum of input lengths"):
        nfdata.random_split(range(10), [3, 3])
    with pytest.warns(UserWarning, match="Length of split at index [12] is 0"):
        nfdata.random_split(range(2), [0.9, 0.05, 0.05])


def test_concat_subset_stack_and_chain_datasets():
    a, b = Squares(3), Squares(4)
    cat = a + b
    assert isinstance(cat, nfdata.ConcatDataset) and len(cat) == 7 and cat.cumulative_sizes == [3, 7]
    assert cat[3]["label"] == 0 and cat[-1]["label"] == 0 and cat[2]["label"] == 2
    with pytest.raises(ValueError, match="absolute value"):
        cat[-8]
    with pytest.raises(AssertionError):
        nfdata.ConcatDataset([])

    class Fetched(Squares):
        calls = []

        def __getitems__(self, indices):
            self.calls.append(list(indices))
            return [self[i] for i in indices]

    sub = nfdata.Subset(Fetched(10), [9, 8, 7, 6])
    batches = list(nfdata.DataLoader(sub, batch_size=3))
    assert Fetched.calls == [[9, 8, 7], [6]]  # the DataLoader fetches whole batches through __getitems__
    assert batches[0]["label"].tolist() == [0, 2, 1]
    stacked = nfdata.StackDataset(a, Squares(3))
    assert len(stacked) == 3 and stacked[1][1]["label"] == 1
    assert nfdata.StackDataset(left=a, right=a)[2]["right"]["label"] == 2

    class Stream(nfdata.IterableDataset):
        def __init__(self, n):
            self.n = n

        def __iter__(self):
            return iter(range(self.n))

        def __len__(self):
            return self.n

    chained = Stream(3) + Stream(2)
    assert isinstance(chained, nfdata.ChainDataset) and list(chained) == [0, 1, 2, 0, 1] and len(chained) == 5


class Stream(nfdata.IterableDataset):
    def __iter__(self):
        return iter(range(11))

    def __len__(self):
        return 11


class TorchStream(tdata.IterableDataset):
    def __iter__(self):
        return iter(range(11))

    def __len__(self):
        return 11


@pytest.mark.parametrize("kw", [dict(), dict(batch_size=4), dict(batch_size=4, drop_last=True), dict(batch_size=None),
                                dict(batch_size=3, num_workers=1)])
def test_iterable_dataset_batches_match_torch(kw):
    ours, theirs = nfdata.DataLoader(Stream(), **kw), tdata.DataLoader(TorchStream(), **kw)
    assert as_numpy(list(ours)) == as_numpy(list(theirs)) and len(ours) == len(theirs)


@pytest.mark.parametrize("kw", [
    dict(shuffle=True, sampler=[0, 1]),
    dict(batch_sampler=[[0]], batch_size=2),
    dict(batch_sampler=[[0]], drop_last=True),
    dict(batch_size=None, drop_last=True),
    dict(num_workers=-1),
    dict(prefetch_factor=2),
    dict(persistent_workers=True),
    dict(timeout=-1),
])
def test_argument_errors_match_torch(kw):
    with pytest.raises(ValueError) as theirs:
        tdata.DataLoader(TorchSquares(4), **kw)
    with pytest.raises(ValueError) as ours:
        nfdata.DataLoader(Squares(4), **kw)
    assert str(ours.value).replace(" ", "") == str(theirs.value).replace(" ", "")


@pytest.mark.parametrize("kw", [dict(shuffle=True), dict(sampler=[0]), dict(batch_sampler=[[0]])])
def test_iterable_dataset_refuses_orderings_as_torch(kw):
    with pytest.raises(ValueError, match="IterableDataset: expected unspecified"):
        nfdata.DataLoader(Stream(), **kw)


def test_loader_attributes_and_in_process_workers():
    loader = nfdata.DataLoader(Squares(5), batch_size=2, num_workers=4, persistent_workers=True)
    assert loader.prefetch_factor == 2 and nfdata.get_worker_info() is None
    with pytest.raises(ValueError, match="batch_size attribute should not be set"):
        loader.batch_size = 3
    loader.num_workers = 0  # not frozen in torch either
    with pytest.warns(UserWarning, match="pin_memory"):
        nfdata.DataLoader(Squares(5), pin_memory=True)
    assert isinstance(loader.sampler, nfdata.SequentialSampler) and isinstance(loader.batch_sampler, nfdata.BatchSampler)
