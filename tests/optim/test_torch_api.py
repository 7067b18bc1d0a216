"""The optimizer API as torch code uses it: state_dict structure (int keys, group options), loading
torch's own state dict, named parameters, gradients set as `p.grad = t`, editing param_groups
mid-run, add_param_group, zero_grad's default, torch's extra options."""
import numpy as np
import pytest

import nanoframe
from nanoframe.errors import CheckpointError, NanoframeError
from nanoframe.nn import Linear, Parameter, Sequential
from nanoframe.optim import SGD, Adam, AdamW

torch = pytest.importorskip("torch")

SHAPES = [(3, 2), (2,), (4,)]


def _pair(seed=0):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s) for s in SHAPES]
    return [Parameter(a.copy()) for a in init], [torch.tensor(a.copy(), requires_grad=True) for a in init]


def _grads(step):
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(s) for s in SHAPES]


def _groups(params, cls):
    extra = {"momentum": 0.9} if cls in (SGD, torch.optim.SGD) else {}
    return [dict(params=params[:2], **extra), dict(params=params[2:], lr=0.02, weight_decay=0.1, **extra)]


def _step(ours, theirs, o_opt, t_opt, step):
    for p, q, g in zip(ours, theirs, _grads(step)):
        p.grad = nanoframe.tensor(g)  # set as a Tensor, as torch code does
        q.grad = torch.tensor(g)
    o_opt.step()
    t_opt.step()


@pytest.mark.parametrize("ours_cls, torch_cls", [(SGD, torch.optim.SGD), (Adam, torch.optim.Adam),
                                                 (AdamW, torch.optim.AdamW)])
def test_state_dict_structure_matches_torch(ours_cls, torch_cls):
    ours, theirs = _pair()
    o_opt = ours_cls(_groups(ours, ours_cls), lr=0.01)
    t_opt = torch_cls(_groups(theirs, torch_cls), lr=0.01)
    for step in range(3):
        _step(ours, theirs, o_opt, t_opt, step)
    o_sd, t_sd = o_opt.state_dict(), t_opt.state_dict()
    assert o_sd.keys() == t_sd.keys() == {"state", "param_groups"}
    assert list(o_sd["state"]) == list(t_sd["state"]) == [0, 1, 2]
    for i in range(3):
        assert o_sd["state"][i].keys() == t_sd["state"][i].keys()
        for name, value in t_sd["state"][i].items():
            mine = o_sd["state"][i][name]
            if name == "step":
                assert mine == int(value.item())
            else:
                assert isinstance(mine, nanoframe.Tensor)
                np.testing.assert_allclose(mine.array, value.numpy(), rtol=1e-6)
    assert o_sd["param_groups"] == t_sd["param_groups"]  # every option, the same values and params lists


@pytest.mark.parametrize("ours_cls, torch_cls", [(SGD, torch.optim.SGD), (AdamW, torch.optim.AdamW)])
def test_load_torchs_state_dict_and_continue_identically(ours_cls, torch_cls):
    ours, theirs = _pair()
    t_opt = torch_cls(_groups(theirs, torch_cls), lr=0.01)
    for step in range(4):
        for q, g in zip(theirs, _grads(step)):
            q.grad = torch.tensor(g)
        t_opt.step()
    for p, q in zip(ours, theirs):
        p.array[...] = q.detach().numpy()
    t_sd = t_opt.state_dict()
    converted = {"state": {k: {n: v.numpy() if v.dim() else v.item() for n, v in s.items()} for k, s in t_sd["state"].items()},
                 "param_groups": t_sd["param_groups"]}
    o_opt = ours_cls(_groups(ours, ours_cls), lr=0.5)
    o_opt.load_state_dict(converted)
    assert o_opt.param_groups[0]["lr"] == 0.01
    for step in range(4, 9):
        _step(ours, theirs, o_opt, t_opt, step)
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(p.array, q.detach().numpy(), rtol=1e-6, atol=1e-12)


def test_editing_param_groups_mid_run_matches_torch():
    ours, theirs = _pair()
    o_opt, t_opt = AdamW(_groups(ours, AdamW), lr=0.01), torch.optim.AdamW(_groups(theirs, torch.optim.AdamW), lr=0.01)
    for step in range(8):
        if step == 3:
            for opt in (o_opt, t_opt):
                opt.param_groups[0]["lr"] = 0.003
                opt.param_groups[1]["weight_decay"] = 0.0
                opt.param_groups[1]["betas"] = (0.8, 0.99)
        _step(ours, theirs, o_opt, t_opt, step)
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(p.array, q.detach().numpy(), rtol=1e-6, atol=1e-12)


def test_add_param_group_and_named_parameters_match_torch():
    model = Sequential(Linear(2, 3), Linear(3, 1))
    tmodel = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    o_opt = SGD(model[0].named_parameters(prefix="0"), lr=0.1)
    t_opt = torch.optim.SGD(tmodel[0].named_parameters(prefix="0"), lr=0.1)
    o_opt.add_param_group({"params": list(model[1].named_parameters(prefix="1")), "lr": 0.01})
    t_opt.add_param_group({"params": list(tmodel[1].named_parameters(prefix="1")), "lr": 0.01})
    o_groups, t_groups = o_opt.state_dict()["param_groups"], t_opt.state_dict()["param_groups"]
    assert o_groups == t_groups
    assert o_groups[0]["param_names"] == ["0.weight", "0.bias"]
    with pytest.raises(ValueError, match="with/without names"):
        o_opt.add_param_group({"params": [Parameter(np.zeros(1, np.float32))]})
    with pytest.raises(ValueError, match="more than one"):
        o_opt.add_param_group({"params": [("w", model[1].weight)]})


def test_zero_grad_default_and_state_defaultdict():
    p = Parameter(np.ones(3, np.float32))
    opt = SGD([p], lr=0.1, momentum=0.9)
    assert opt.state[p] == {}  # torch's defaultdict: no KeyError before the first step
    p.grad = nanoframe.tensor(np.ones(3, np.float32))
    opt.step()
    opt.zero_grad()
    assert p.grad is None  # set_to_none=True by default, as torch
    assert opt.state_dict()["state"][0]["momentum_buffer"].shape == (3,)


def test_user_grad_tensor_is_read_and_updated_in_place():
    p = Parameter(np.zeros(2, np.float32))
    g = nanoframe.tensor(np.array([3.0, 4.0], np.float32))
    p.grad = g
    nanoframe.nn.utils.clip_grad_norm_([p], 1.0)
    np.testing.assert_allclose(g.array, [0.6, 0.8], rtol=1e-5)  # p.grad is g, clipped in place as in torch
    SGD([p], lr=1.0).step()
    np.testing.assert_allclose(p.array, [-0.6, -0.8], rtol=1e-5)


def test_torch_options_accepted_and_checked():
    p = [Parameter(np.zeros(2, np.float32))]
    AdamW(p, fused=True)
    Adam(p, foreach=True, capturable=True)
    SGD(p, lr=0.1, fused=False, foreach=None)
    with pytest.raises(NanoframeError, match="differentiable"):
        Adam(p, differentiable=True)
    with pytest.raises(RuntimeError, match="cannot be `True` together"):
        SGD(p, lr=0.1, fused=True, foreach=True)
    with pytest.raises(TypeError):
        SGD(p, 0.1, 0.9, 0, 0, False, False)  # maximize and the rest are keyword-only, as torch


def test_adam_with_decoupled_weight_decay_is_adamw_as_torch():
    ours, theirs = _pair()
    o_opt = Adam(ours, lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)
    t_opt = torch.optim.Adam(theirs, lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)
    for step in range(5):
        _step(ours, theirs, o_opt, t_opt, step)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.array, q.detach().numpy(), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("mutate, match", [
    (lambda sd: sd["state"].update({0: {"step": -1, "exp_avg": sd["state"][0]["exp_avg"]}}), "'step'.*int >= 0"),
    (lambda sd: sd["state"][0].update(exp_avg=np.full((3, 2), np.nan)), "finite"),
    (lambda sd: sd["state"].update({"x": {}}), "index 'x'"),
    (lambda sd: sd.update(state={True: {}}), "index True"),
    (lambda sd: sd["param_groups"][0].update(lr=-1.0), "group 0.*Invalid learning rate"),
    (lambda sd: sd["param_groups"][1].update(betas=(1.5, 0.9)), "group 1.*beta"),
    (lambda sd: sd["param_groups"][0].update(params="ab"), "group 0"),
    (lambda sd: sd.pop("param_groups"), "param_groups"),
    (lambda sd: sd.update(state=[1]), "'state' must be a dict"),
])
def test_load_state_dict_refuses_bad_values_before_changing_anything(mutate, match):
    ours, _ = _pair()
    opt = AdamW(_groups(ours, AdamW), lr=0.01)
    for p, g in zip(ours, _grads(0)):
        p.grad_array = g
    opt.step()
    sd = opt.state_dict()
    mutate(sd)
    fresh = AdamW(_groups(_pair()[0], AdamW), lr=0.01)
    with pytest.raises(CheckpointError, match=match):
        fresh.load_state_dict(sd)
    assert fresh.state == {} and fresh.param_groups[0]["lr"] == 0.01
