"""Optimizer API: param groups, zero_grad, state_dict round trips (also through nanoframe.io),
load validation."""
import numpy as np
import pytest

import nanoframe
from nanoframe.nn import Parameter
from nanoframe.optim import SGD, Adam, AdamW

SHAPES = [(6, 4), (4,), (3, 3)]


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal(s).astype(np.float32)) for s in SHAPES]


def _grads(step):
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(s).astype(np.float32) for s in SHAPES]


def _make(cls, params):
    if cls is SGD:
        return SGD([{"params": params[:2]}, {"params": params[2:], "lr": 0.05}], lr=0.1, momentum=0.9,
                   weight_decay=0.01)
    return cls([{"params": params[:2]}, {"params": params[2:], "lr": 0.02, "weight_decay": 0.0}], lr=0.01,
               amsgrad=cls is Adam)


def _train(opt, params, steps):
    for step in steps:
        for p, g in zip(params, _grads(step)):
            p.grad_array = g
        opt.step()


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
@pytest.mark.parametrize("through_file", [False, True])
def test_state_dict_resume_is_identical(cls, through_file, tmp_path):
    ref = _params()
    ref_opt = _make(cls, ref)
    _train(ref_opt, ref, range(10))

    run = _params()
    opt = _make(cls, run)
    _train(opt, run, range(5))
    sd = opt.state_dict()
    weights = [p.array.copy() for p in run]
    if through_file:
        nanoframe.save(sd, tmp_path / "opt.safetensors")
        sd = nanoframe.load(tmp_path / "opt.safetensors")

    resumed = [Parameter(w) for w in weights]
    opt2 = _make(cls, resumed)
    opt2.load_state_dict(sd)
    _train(opt2, resumed, range(5, 10))
    for a, b in zip(ref, resumed):
        np.testing.assert_array_equal(a.array, b.array)


def test_state_dict_layout_and_snapshot():
    params = _params()
    opt = _make(AdamW, params)
    _train(opt, params, range(2))
    sd = opt.state_dict()
    assert list(sd["state"]) == [0, 1, 2]  # int keys, as torch
    assert sd["param_groups"][0]["params"] == [0, 1] and sd["param_groups"][1]["params"] == [2]
    assert sd["param_groups"][1]["lr"] == 0.02 and sd["param_groups"][0]["weight_decay"] == 0.01
    st = sd["state"][2]
    assert st["step"] == 2 and isinstance(st["step"], int)
    assert set(st) == {"step", "exp_avg", "exp_avg_sq"}
    assert isinstance(st["exp_avg"], nanoframe.Tensor) and st["exp_avg"].shape == (3, 3)
    before = st["exp_avg"].numpy().copy()
    _train(opt, params, range(2, 3))
    np.testing.assert_array_equal(st["exp_avg"].numpy(), before)  # a snapshot, not a live view


def test_load_state_dict_restores_group_options():
    params = _params()
    opt = _make(AdamW, params)
    _train(opt, params, range(1))
    sd = opt.state_dict()
    sd["param_groups"][1]["lr"] = 0.123
    sd["param_groups"][1]["betas"] = [0.5, 0.6]
    sd["state"] = {str(k): v for k, v in sd["state"].items()}  # str keys (files written before) load too
    opt2 = _make(AdamW, _params())
    opt2.load_state_dict(sd)
    assert opt2.param_groups[1]["lr"] == 0.123 and opt2.param_groups[1]["betas"] == (0.5, 0.6)
    assert opt2.state[opt2.param_groups[1]["params"][0]]["step"] == 1


def test_load_state_dict_errors():
    params = _params()
    opt = _make(Adam, params)
    _train(opt, params, range(1))
    sd = opt.state_dict()

    bad = opt.state_dict()
    bad["state"][1]["exp_avg"] = np.zeros((5,), np.float32)
    fresh = _make(Adam, _params())
    with pytest.raises(ValueError, match=r"exp_avg.*parameter 1.*\(5,\).*\(4,\)"):
        fresh.load_state_dict(bad)
    assert fresh.state == {}  # nothing changed

    with pytest.raises(ValueError, match="parameter groups"):
        Adam(_params(), lr=0.1).load_state_dict(sd)
    params2 = _params()
    other = Adam([{"params": params2[:1]}, {"params": params2[1:]}])
    with pytest.raises(ValueError, match="parameter group 0"):
        other.load_state_dict(sd)


def test_param_group_validation():
    p = _params()
    with pytest.raises(TypeError):
        SGD(p[0], lr=0.1)
    with pytest.raises(ValueError, match="empty"):
        SGD([], lr=0.1)
    with pytest.raises(ValueError, match="more than one"):
        SGD([{"params": p[:2]}, {"params": p[1:]}], lr=0.1)
    with pytest.raises(ValueError, match="twice"):
        SGD([p[0], p[0]], lr=0.1)
    with pytest.raises(ValueError, match="Nesterov"):
        SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="beta"):
        Adam(p, betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="learning rate"):
        AdamW(p, lr=-1.0)


def test_add_param_group_and_defaults():
    p = _params()
    opt = AdamW(p[:1], lr=0.01)
    opt.add_param_group({"params": p[1:], "weight_decay": 0.0})
    assert len(opt.param_groups) == 2
    g = opt.param_groups[1]
    assert g["lr"] == 0.01 and g["weight_decay"] == 0.0 and g["betas"] == (0.9, 0.999) and g["amsgrad"] is False
    assert opt.param_groups[0]["weight_decay"] == 0.01
    assert "Parameter Group 1" in repr(opt)


def test_zero_grad_and_skip_none():
    p = _params()
    opt = SGD(p, lr=0.1)
    before = [q.array.copy() for q in p]
    opt.step()  # no grads: nothing happens
    for a, q in zip(before, p):
        np.testing.assert_array_equal(a, q.array)
    for q, g in zip(p, _grads(0)):
        q.grad_array = g
    grad_arr = p[0].grad_array
    opt.zero_grad(set_to_none=False)
    assert p[0].grad_array is grad_arr and not grad_arr.any()
    opt.zero_grad()
    assert all(q.grad_array is None for q in p)


def test_step_updates_data_in_place_and_closure():
    p = _params()
    arr = p[0].array
    opt = AdamW(p, lr=0.1)

    def closure():
        for q, g in zip(p, _grads(0)):
            q.grad_array = g
        return 3.5

    assert opt.step(closure) == 3.5
    assert p[0].array is arr  # references held elsewhere (views, flat buffers) stay valid
