"""GPT model: forward/backward parity with a nanoGPT-style torch model, gradcheck, weight tying,
init statistics, overfitting one batch, config validation, optimizer groups, FLOPs."""
import math

import numpy as np
import pytest

import nanoframe as nf
from nanoframe import nn
from nanoframe.models.gpt import GPT, GPTConfig
from nanoframe.testing import gradcheck


def tiny_config(**kw):
    base = dict(vocab_size=11, block_size=8, n_layer=2, n_head=4, n_embd=16, dropout=0.0, bias=True)
    base.update(kw)
    return GPTConfig(**base)


def batch(cfg, B=3, T=None, seed=0, ignore=True):
    rng = np.random.default_rng(seed)
    T = cfg.block_size if T is None else T
    idx = rng.integers(0, cfg.vocab_size, size=(B, T))
    tgt = rng.integers(0, cfg.vocab_size, size=(B, T))
    if ignore:
        tgt[0, :2] = -100   # some ignored positions
    return idx, tgt


# ---- the torch twin (nanoGPT's model.py, compact) -----------------------------------------------------
def torch_gpt(cfg):
    torch = pytest.importorskip("torch")
    tnn, tF = torch.nn, torch.nn.functional

    class Attn(tnn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = tnn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
            self.c_proj = tnn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = self.c_attn(x).split(C, dim=2)
            q, k, v = (t.view(B, T, cfg.n_head, C // cfg.n_head).transpose(1, 2) for t in (q, k, v))
            att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
            mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
            att = torch.softmax(att.masked_fill(~mask, float("-inf")), dim=-1)
            return self.c_proj((att @ v).transpose(1, 2).reshape(B, T, C))

    class MLP(tnn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc = tnn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
            self.c_proj = tnn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)

        def forward(self, x):
            return self.c_proj(tF.gelu(self.c_fc(x), approximate="tanh"))

    class Block(tnn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = tnn.LayerNorm(cfg.n_embd, bias=cfg.bias)
            self.attn = Attn()
            self.ln_2 = tnn.LayerNorm(cfg.n_embd, bias=cfg.bias)
            self.mlp = MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class TGPT(tnn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = tnn.ModuleDict(dict(
                wte=tnn.Embedding(cfg.vocab_size, cfg.n_embd),
                wpe=tnn.Embedding(cfg.block_size, cfg.n_embd),
                h=tnn.ModuleList([Block() for _ in range(cfg.n_layer)]),
                ln_f=tnn.LayerNorm(cfg.n_embd, bias=cfg.bias),
            ))
            self.lm_head = tnn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
            self.transformer.wte.weight = self.lm_head.weight

        def forward(self, idx, targets):
            T = idx.shape[1]
            x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(T))
            for b in self.transformer.h:
                x = b(x)
            logits = self.lm_head(self.transformer.ln_f(x))
            loss = tF.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-100)
            return logits, loss

    return torch, TGPT()


def perturb_norms(model, seed=1):
    """1-D parameters (LayerNorm weights, all biases) start at 1 or 0; move them so every term of
    their gradients is exercised."""
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        if p.ndim == 1:
            p.array[...] = p.array + rng.normal(0, 0.1, p.shape).astype(p.dtype)


def compare_with_torch(cfg, dtype, rtol, atol):
    nf.manual_seed(0)
    model = GPT(cfg)
    if dtype == np.float64:
        model.double()
    perturb_norms(model)
    torch, tmodel = torch_gpt(cfg)
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    tmodel = tmodel.to(tdtype)
    tparams = dict(tmodel.named_parameters())
    names = [n for n, _ in model.named_parameters()]
    assert sorted(names) == sorted(tparams), (names, list(tparams))
    with torch.no_grad():
        for name, p in model.named_parameters():
            tparams[name].copy_(torch.from_numpy(p.array.copy()))

    idx, tgt = batch(cfg)
    logits, loss = model(idx, tgt)
    loss.backward()
    tlogits, tloss = tmodel(torch.from_numpy(idx), torch.from_numpy(tgt))
    tloss.backward()

    assert logits.shape == (3, cfg.block_size, cfg.vocab_size)
    assert logits.dtype == dtype
    np.testing.assert_allclose(logits.array, tlogits.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=rtol, atol=atol)
    for name, p in model.named_parameters():
        assert p.grad_array is not None, name
        tg = tparams[name].grad.numpy()
        scale = np.abs(tg).max()
        np.testing.assert_allclose(p.grad_array, tg, rtol=rtol, atol=atol * max(scale, 1e-3),
                                   err_msg=f"gradient of {name}")
    return len(names)


@pytest.mark.parametrize("bias", [True, False])
def test_forward_backward_matches_torch_float32(bias):
    n = compare_with_torch(tiny_config(bias=bias), np.float32, rtol=1e-4, atol=1e-5)
    assert n == (2 + 2 * 12 + 2 if bias else 2 + 2 * 6 + 1)  # wte (tied), wpe, 2 blocks, ln_f


@pytest.mark.parametrize("bias", [True, False])
def test_forward_backward_matches_torch_float64(bias):
    compare_with_torch(tiny_config(bias=bias), np.float64, rtol=1e-7, atol=1e-10)


def test_gradcheck_tiny_gpt_float64():
    nf.manual_seed(0)
    cfg = GPTConfig(vocab_size=7, block_size=3, n_layer=1, n_head=2, n_embd=4, bias=True)
    model = GPT(cfg).double()
    perturb_norms(model)
    for p in model.parameters():   # larger weights than the 0.02 init make a sharper check
        p.array[...] = p.array * 10.0
    idx = np.array([[1, 5, 2], [6, 0, 3]])
    tgt = np.array([[5, 2, 6], [0, -100, 4]])
    names = ["transformer.wte.weight", "transformer.h.0.attn.c_attn.weight",
             "transformer.h.0.ln_1.weight", "transformer.h.0.mlp.c_fc.bias"]
    params = [model.get_parameter(n) for n in names]

    def loss_fn(*ps):
        return model(idx, tgt)[1]

    errors = gradcheck(loss_fn, params, atol=1e-7, rtol=1e-5)
    assert all(e < 1e-5 for e in errors), errors


def test_weight_tying_one_parameter_and_both_gradients():
    nf.manual_seed(0)
    cfg = tiny_config()
    model = GPT(cfg)
    assert model.lm_head.weight is model.transformer.wte.weight
    names = [n for n, _ in model.named_parameters()]
    assert names.count("transformer.wte.weight") == 1 and "lm_head.weight" not in names
    assert names[0] == "transformer.wte.weight" and names[1] == "transformer.wpe.weight"
    assert "transformer.h.1.attn.c_attn.weight" in names and names[-1] == "transformer.ln_f.bias"
    sd = model.state_dict()
    assert "lm_head.weight" in sd and "transformer.wte.weight" in sd
    assert sd["lm_head.weight"].array is sd["transformer.wte.weight"].array

    idx, tgt = batch(cfg)
    model(idx, tgt)[1].backward()
    tied_grad = model.transformer.wte.weight.grad_array.copy()

    # untie: same values in two separate Parameters; the tied gradient is the sum of both
    model.zero_grad()
    model.lm_head.weight = nn.Parameter(model.transformer.wte.weight.array.copy())
    model(idx, tgt)[1].backward()
    g_emb, g_head = model.transformer.wte.weight.grad_array, model.lm_head.weight.grad_array
    assert np.abs(g_emb).max() > 0 and np.abs(g_head).max() > 0
    np.testing.assert_allclose(tied_grad, g_emb + g_head, rtol=1e-5, atol=1e-7)


def test_init_statistics_and_seed():
    nf.manual_seed(123)
    cfg = GPTConfig(vocab_size=256, block_size=64, n_layer=4, n_head=4, n_embd=128)
    model = GPT(cfg)
    resid = np.concatenate([p.array.ravel() for n, p in model.named_parameters() if n.endswith("c_proj.weight")])
    np.testing.assert_allclose(resid.std(), 0.02 / math.sqrt(2 * cfg.n_layer), rtol=0.03)
    for name in ["transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.attn.c_attn.weight",
                 "transformer.h.3.mlp.c_fc.weight"]:
        p = model.get_parameter(name).array
        np.testing.assert_allclose(p.std(), 0.02, rtol=0.05, err_msg=name)
        assert abs(p.mean()) < 2e-3, name
    for name, p in model.named_parameters():
        if name.endswith(".bias"):
            assert not p.array.any(), name
        elif "ln_" in name:
            assert (p.array == 1).all(), name
        assert p.dtype == np.float32, name
    nf.manual_seed(123)
    again = GPT(cfg)
    for (n, p), (_, q) in zip(model.named_parameters(), again.named_parameters()):
        np.testing.assert_array_equal(p.array, q.array, err_msg=n)


def test_overfits_one_batch():
    nf.manual_seed(0)
    cfg = GPTConfig(vocab_size=16, block_size=8, n_layer=2, n_head=2, n_embd=32)
    model = GPT(cfg)
    idx, tgt = batch(cfg, B=4, ignore=False)
    opt = model.configure_optimizer(weight_decay=0.0, lr=1e-2, betas=(0.9, 0.95))
    first = None
    for step in range(300):
        _, loss = model(idx, tgt)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.05:
            break
    assert abs(first - math.log(cfg.vocab_size)) < 0.1   # starts near uniform
    assert loss.item() < 0.1, (step, loss.item())


def test_ignore_index_and_last_only():
    nf.manual_seed(0)
    cfg = tiny_config()
    model = GPT(cfg)
    idx, tgt = batch(cfg, ignore=False)
    logits, loss = model(idx, tgt)
    # mean cross-entropy by hand in float64
    z = logits.array.astype(np.float64)
    logp = z - z.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, tgt[..., None], -1)[..., 0]
    np.testing.assert_allclose(loss.item(), nll.mean(), rtol=1e-5)
    tgt2 = tgt.copy()
    tgt2[:, ::2] = 7
    _, l7 = model(idx, tgt2, ignore_index=7)
    keep = tgt2 != 7                  # also drops odd positions whose target happened to be 7
    assert keep.sum() < tgt.size // 2 + 1
    np.testing.assert_allclose(l7.item(), nll[keep].mean(), rtol=1e-5)
    last, none = model(nf.tensor(idx), last_only=True)
    assert none is None and last.shape == (3, 1, cfg.vocab_size)
    np.testing.assert_allclose(last.array[:, 0], logits.array[:, -1], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="last_only"):
        model(idx, tgt, last_only=True)


def test_sequence_longer_than_block_size_raises():
    model = GPT(tiny_config(block_size=4))
    with pytest.raises(ValueError, match=r"T=5.*block_size is only 4"):
        model(np.zeros((1, 5), dtype=np.int64))
    with pytest.raises(ValueError, match="2-D"):
        model(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError):
        model(np.array([[0, 11]]))     # id out of the vocabulary


@pytest.mark.parametrize("field,value,match", [
    ("n_embd", 30, "n_embd.*divisible.*n_head"),
    ("n_head", 0, "n_head"),
    ("vocab_size", -1, "vocab_size"),
    ("block_size", 2.5, "block_size"),
    ("n_layer", True, "n_layer"),
    ("dropout", 1.0, "dropout"),
    ("dropout", -0.1, "dropout"),
    ("bias", "yes", "bias"),
])
def test_config_validation(field, value, match):
    with pytest.raises(ValueError, match=match):
        tiny_config(**{field: value})


def test_config_dict_round_trip():
    cfg = tiny_config(dropout=0.1, bias=False)
    d = cfg.to_dict()
    old = dict(vocab_size=11, block_size=8, n_layer=2, n_head=4, n_embd=16, dropout=0.1, bias=False)
    assert {k: d[k] for k in old} == old
    assert GPTConfig.from_dict(old) == cfg    # a config written before the Llama fields reads as GPT-2
    assert set(d) - set(old) == {"n_kv_head", "positions", "rope_theta", "norm", "norm_eps", "mlp", "mlp_hidden",
                                 "qkv_proj", "qkv_bias", "attention_bias", "mlp_bias", "tie_word_embeddings"}
    assert GPTConfig.from_dict(d) == cfg
    assert GPTConfig.from_dict({"n_layer": 2}) == GPTConfig(n_layer=2)
    with pytest.raises(ValueError, match="unknown key.*n_heads"):
        GPTConfig.from_dict({**d, "n_heads": 4})
    assert GPTConfig() == GPTConfig(65, 256, 6, 6, 384, 0.0, True)


def test_configure_optimizer_groups():
    model = GPT(tiny_config())
    opt = model.configure_optimizer(weight_decay=0.1, lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    g_decay, g_plain = opt.param_groups
    assert g_decay["weight_decay"] == 0.1 and g_plain["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in g_decay["params"]) and all(p.ndim < 2 for p in g_plain["params"])
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert g_decay["lr"] == 3e-4 and tuple(g_decay["betas"]) == (0.9, 0.95) and g_decay["eps"] == 1e-8


def test_parameter_count_and_flops():
    cfg = tiny_config()
    model = GPT(cfg)
    C, V, L, T = cfg.n_embd, cfg.vocab_size, cfg.n_layer, cfg.block_size
    per_block = 2 * 2 * C + (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C)
    total = V * C + T * C + L * per_block + 2 * C
    assert model.num_parameters(non_embedding=False) == total
    assert model.num_parameters() == total - T * C
    assert model.estimate_flops_per_token() == 6 * (total - T * C) + 12 * L * T * C
    assert model.estimate_flops_per_token(seq_len=4) == 6 * (total - T * C) + 12 * L * 4 * C
    f = model.estimate_flops_per_token()
    assert model.estimate_mfu(tokens_per_sec=1000.0, peak_flops=f * 4000.0) == pytest.approx(0.25)


def test_dropout_train_vs_eval():
    nf.manual_seed(0)
    model = GPT(tiny_config(dropout=0.5))
    idx, _ = batch(model.config)
    a = model(idx)[0].array
    b = model(idx)[0].array
    assert not np.allclose(a, b)          # dropout active in training mode
    model.eval()
    np.testing.assert_array_equal(model(idx)[0].array, model(idx)[0].array)
