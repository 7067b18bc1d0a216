"""Adam/AdamW update the small parameters as one flat piece: the same bits as one by one."""
import numpy as np
import pytest

from nanoframe.nn import Parameter
from nanoframe.optim import Adam, AdamW, adam

SHAPES = [(80, 60), (30,), (7,), (3, 4), (1,), (50,)]   # one big matrix, the rest packed
SMALL = adam.SMALL                                      # the library's (the tests patch it)


def _run(cls, small, monkeypatch, steps=5, skip=(), **options):
    """Parameters after `steps` steps with adam.SMALL = small; parameter i gets no gradient on step s
    when (s, i) is in `skip` (the packed set changes)."""
    monkeypatch.setattr(adam, "SMALL", small)
    rng = np.random.default_rng(0)
    params = [Parameter(rng.standard_normal(s).astype(np.float32)) for s in SHAPES]
    opt = cls(params, lr=0.01, **options)
    for step in range(steps):
        for i, p in enumerate(params):
            p.grad_array = None if (step, i) in skip else rng.standard_normal(p.shape).astype(np.float32)
        opt.step()
    return [p.array.copy() for p in params], opt


@pytest.mark.parametrize("cls,options", [
    (AdamW, {}),
    (AdamW, {"weight_decay": 0.1, "amsgrad": True}),
    (Adam, {"weight_decay": 0.01, "maximize": True}),
])
def test_packed_update_equals_one_by_one(monkeypatch, cls, options):
    one_by_one, _ = _run(cls, 0, monkeypatch, **options)
    packed, opt = _run(cls, SMALL, monkeypatch, **options)
    for a, b in zip(one_by_one, packed):
        np.testing.assert_array_equal(a, b)
    flat = opt.state[opt.param_groups[0]["params"][1]]["exp_avg"].base
    assert flat is not None and flat.size == 30 + 7 + 12 + 1 + 50   # the small parameters' moments, one array


def test_a_parameter_without_gradient_changes_the_pack_not_the_result(monkeypatch):
    skip = {(1, 1), (2, 3), (2, 4), (3, 1)}          # steps on which some small parameters have no grad
    one_by_one, _ = _run(AdamW, 0, monkeypatch, skip=skip)
    packed, opt = _run(AdamW, SMALL, monkeypatch, skip=skip)
    for a, b in zip(one_by_one, packed):
        np.testing.assert_array_equal(a, b)
    steps = [opt.state[p]["step"] for p in opt.param_groups[0]["params"]]
    assert steps == [5, 3, 5, 4, 4, 5]               # per parameter, as torch counts them


def test_state_entries_stay_each_parameters_own_shape_and_survive_load(monkeypatch):
    _, opt = _run(AdamW, SMALL, monkeypatch, steps=2)
    sd = opt.state_dict()
    for i, shape in enumerate(SHAPES):
        assert sd["state"][i]["exp_avg"].shape == shape
    rng = np.random.default_rng(1)
    params = [Parameter(rng.standard_normal(s).astype(np.float32)) for s in SHAPES]
    fresh = AdamW(params, lr=0.01)
    fresh.load_state_dict(sd)                        # plain arrays again: packed anew on the next step
    for p in params:
        p.grad_array = np.ones(p.shape, np.float32)
    fresh.step()
    flat = fresh.state[params[2]]["exp_avg"].base
    assert flat is not None and np.shares_memory(flat, fresh.state[params[5]]["exp_avg_sq"]) is False
    assert fresh.state[params[5]]["exp_avg"].base is flat
