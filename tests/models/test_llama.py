"""The Llama setting of GPT (RMSNorm, SwiGLU, RoPE, grouped-query attention, split projections,
tied or untied lm_head, Qwen2's q/k/v biases) against transformers' LlamaForCausalLM and
Qwen2ForCausalLM on tiny random models built here: logits, loss, every gradient, greedy generation
with the cache; from_hf / to_hf both ways; parameter_shapes against the built models; the KV cache
holding only the K/V heads; refusals with one line."""
import dataclasses
import json

import numpy as np
import pytest

import nanoframe as nf
from nanoframe.errors import ConfigError
from nanoframe.models.generate import KVCache
from nanoframe.models.gpt import GPT, GPTConfig, linear_shapes, parameter_shapes
from nanoframe.models.hf import _our_name, config_from_hf, hf_family
from nanoframe.testing import gradcheck

LLAMA = dict(vocab_size=61, block_size=32, n_layer=2, n_head=4, n_embd=32, n_kv_head=2, positions="rope",
             rope_theta=500.0, norm="rmsnorm", norm_eps=1e-6, mlp="swiglu", mlp_hidden=40, qkv_proj="split", bias=False)


def llama_config(**kw):
    return GPTConfig(**{**LLAMA, **kw})


def hf_model(model_type, dtype, tie=False, **kw):
    """A tiny random transformers model with random norm weights and biases (nothing sits at 1 or 0)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    args = {**dict(vocab_size=61, hidden_size=32, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, max_position_embeddings=32, rope_theta=500.0, rms_norm_eps=1e-6,
                   tie_word_embeddings=tie, attn_implementation="eager"), **kw}
    cls = {"llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
           "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM)}[model_type]
    model = cls[1](cls[0](**args)).to(dtype).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.normal_(1.0 if name.endswith("norm.weight") else 0.0, 0.2)
            else:
                p.normal_(0.0, 0.3)            # larger than the 0.02 init: sharp, well-separated logits
    return model


def hf_folder(tmp_path, model_type, tie=False, **kw):
    torch = pytest.importorskip("torch")
    ref = hf_model(model_type, torch.float32, tie=tie, **kw)
    ref.save_pretrained(tmp_path / model_type, safe_serialization=True)
    return tmp_path / model_type, ref


# ---- parity with transformers -------------------------------------------------------------------------
@pytest.mark.parametrize("model_type,tie,kw", [
    ("llama", False, {}),
    ("llama", True, dict(num_key_value_heads=1)),                              # multi-query, tied (SmolLM2)
    ("llama", False, dict(attention_bias=True, mlp_bias=True, num_key_value_heads=4)),
    ("qwen2", True, {}),                                                       # q, k, v biases
])
def test_from_hf_logits_loss_and_every_gradient_match_transformers(tmp_path, model_type, tie, kw):
    """float32 on both sides: transformers runs RMSNorm and the attention softmax in float32 even in a
    float64 model, so float64 would not be a tighter reference."""
    torch = pytest.importorskip("torch")
    folder, ref = hf_folder(tmp_path, model_type, tie, **kw)
    ours = GPT.from_hf(folder)
    assert hf_family(ours.config) == model_type
    ids = np.random.default_rng(0).integers(0, 61, size=(3, 21))
    out = ref(torch.tensor(ids), labels=torch.tensor(ids))
    out.loss.backward()
    logits, _ = ours(ids)
    _, loss = ours(ids[:, :-1], ids[:, 1:])                  # transformers shifts labels=input_ids
    loss.backward()
    np.testing.assert_allclose(logits.array, out.logits.detach().numpy(), rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(loss.item(), out.loss.item(), rtol=1e-5)
    ours_params = dict(ours.named_parameters())
    seen = set()
    for name, p in ref.named_parameters():
        mine = _our_name(name, "llama")
        if mine == "lm_head.weight" and tie:
            continue                                          # the tied head is wte: one gradient
        seen.add(mine)
        tg = p.grad.numpy()
        np.testing.assert_allclose(ours_params[mine].grad_array, tg, rtol=1e-3, atol=1e-5 * np.abs(tg).max(),
                                   err_msg=f"gradient of {mine}")
    assert seen == set(ours_params)


@pytest.mark.parametrize("model_type", ["llama", "qwen2"])
def test_greedy_generation_with_cache_equals_transformers(tmp_path, model_type):
    torch = pytest.importorskip("torch")
    folder, _ = hf_folder(tmp_path, model_type, tie=model_type == "qwen2")
    ref = type(hf_model(model_type, torch.float32)).from_pretrained(folder).eval()
    ours = GPT.from_hf(folder)
    prompt = np.array([[5, 17, 3, 42, 8], [1, 2, 3, 4, 5]])
    with torch.no_grad():
        theirs = ref.generate(torch.tensor(prompt), attention_mask=torch.ones(prompt.shape, dtype=torch.long),
                              max_new_tokens=20, min_new_tokens=20, do_sample=False, use_cache=True,
                              pad_token_id=0).numpy()
    mine = ours.generate(prompt, 20, temperature=0.0)
    np.testing.assert_array_equal(mine, theirs)
    assert len(np.unique(mine[:, 5:])) > 3                    # not a degenerate repetition


def test_to_hf_opens_in_transformers_with_equal_logits(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    ids = np.random.default_rng(1).integers(0, 61, size=(2, 17))
    cases = [(llama_config(), "llama"), (llama_config(tie_word_embeddings=True, n_kv_head=1), "llama"),
             (llama_config(qkv_bias=True), "qwen2"), (llama_config(qkv_proj="packed", attention_bias=True), "llama"),
             (llama_config(bias=True), "llama")]
    for i, (cfg, family) in enumerate(cases):
        nf.manual_seed(i)
        ours = GPT(cfg)
        for _, p in ours.named_parameters():
            p.array[...] = np.random.default_rng(i).normal(0, 0.3, p.shape)
        ours.to_hf(tmp_path / str(i), eot_id=0)
        written = json.loads((tmp_path / str(i) / "config.json").read_text())
        assert written["model_type"] == family and written["tie_word_embeddings"] == cfg.tie_word_embeddings
        theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / str(i)).eval()
        with torch.no_grad():
            ref = theirs(torch.tensor(ids)).logits.numpy()
        with nf.no_grad():
            np.testing.assert_allclose(ours.eval()(ids)[0].array, ref, rtol=1e-4, atol=1e-4, err_msg=str(cfg))
        back = GPT.from_hf(tmp_path / str(i))                   # and back: the same function
        with nf.no_grad():
            np.testing.assert_allclose(back(ids)[0].array, ref, rtol=1e-4, atol=1e-4)


def test_to_hf_refuses_a_config_no_family_has(tmp_path):
    with pytest.raises(ConfigError, match="none of gpt2, llama, qwen2"):
        GPT(llama_config(mlp="gelu")).to_hf(tmp_path / "x")
    with pytest.raises(ConfigError, match="none of"):
        GPT(GPTConfig(n_layer=1, n_head=4, n_embd=16, n_kv_head=2)).to_hf(tmp_path / "y")   # GPT-2 with GQA
    assert not (tmp_path / "x").exists()


# ---- config.json validation and refusals ----------------------------------------------------------------
BASE_HF = {"model_type": "llama", "vocab_size": 61, "hidden_size": 32, "intermediate_size": 40,
           "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
           "max_position_embeddings": 32, "rms_norm_eps": 1e-6, "rope_theta": 500.0}


def test_config_from_hf_reads_every_field():
    cfg = config_from_hf({**BASE_HF, "tie_word_embeddings": True, "attention_bias": True, "head_dim": 8,
                          "hidden_act": "silu", "rope_scaling": None})
    assert (cfg.n_kv_head, cfg.kv_heads, cfg.mlp_size, cfg.rope_theta, cfg.norm_eps) == (2, 2, 40, 500.0, 1e-6)
    assert cfg.tie_word_embeddings and cfg.attention_bias and not cfg.mlp_bias and cfg.qkv_proj == "split"
    new_style = {k: v for k, v in BASE_HF.items() if k != "rope_theta"}
    assert config_from_hf({**new_style, "rope_parameters": {"rope_type": "default", "rope_theta": 7e5}}).rope_theta == 7e5
    assert config_from_hf(new_style).rope_theta == 10000.0
    qwen = config_from_hf({**BASE_HF, "model_type": "qwen2", "use_sliding_window": False, "sliding_window": 4096,
                           "max_window_layers": 1, "layer_types": ["full_attention"] * 2})
    assert qwen.qkv_bias and not qwen.attention_bias and hf_family(qwen) == "qwen2"
    assert config_from_hf({**BASE_HF, "num_key_value_heads": 4}).n_kv_head == 0


@pytest.mark.parametrize("change,words", [
    ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "rope_scaling of type 'llama3' is not supported"),
    ({"rope_scaling": {"type": "linear", "factor": 2.0}}, "rope_scaling of type 'linear'"),
    ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4}}, "rope_parameters of type 'yarn'"),
    ({"partial_rotary_factor": 0.5}, "partial_rotary_factor"),
    ({"head_dim": 16}, "head_dim 16 is not supported"),
    ({"hidden_act": "gelu"}, "hidden_act 'gelu' is not supported"),
    ({"use_sliding_window": True}, "sliding-window"),
    ({"layer_types": ["full_attention", "sliding_attention"]}, "only full_attention"),
    ({"num_key_value_heads": 3}, "not a multiple of num_key_value_heads 3"),
    ({"hidden_size": "32"}, "field 'hidden_size' must be an integer"),
    ({"intermediate_size": 1 << 40}, "field 'intermediate_size' must be <="),
    ({"rms_norm_eps": float("nan")}, "field 'rms_norm_eps' must be a finite number"),
    ({"rope_theta": -1.0}, "field 'rope_theta' must be >="),
    ({"tie_word_embeddings": "yes"}, "field 'tie_word_embeddings' must be true or false"),
    ({"model_type": "mistral"}, "model_type 'mistral' is not supported"),
])
def test_config_from_hf_refuses_with_one_line(change, words):
    with pytest.raises(ConfigError, match=words) as e:
        config_from_hf({**BASE_HF, **change}, "m/config.json")
    assert str(e.value).startswith("m/config.json") and "\n" not in str(e.value) and len(str(e.value)) < 300


def test_from_hf_checks_names_and_shapes_before_allocating(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from nanoframe.io import load_safetensors, save_safetensors

    folder, _ = hf_folder(tmp_path, "llama")
    tensors = load_safetensors(folder / "model.safetensors")
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 4000}))
    built = []
    monkeypatch.setattr(GPT, "__init__", lambda self, c: built.append(c))
    with pytest.raises(ConfigError, match=r"missing key\(s\)"):
        GPT.from_hf(folder)
    (folder / "config.json").write_text(json.dumps({**cfg, "num_key_value_heads": 4}))
    with pytest.raises(ConfigError, match="shape mismatch for transformer.h.0.attn.k_proj.weight"):
        GPT.from_hf(folder)
    (folder / "config.json").write_text(json.dumps(cfg))
    save_safetensors({**tensors, "model.layers.0.self_attn.q_norm.weight": np.ones(8, np.float32)},
                     folder / "model.safetensors")
    with pytest.raises(ConfigError, match=r"unexpected key\(s\).*q_norm"):
        GPT.from_hf(folder)
    assert built == []
    tensors["model.layers.1.mlp.up_proj.weight"][0, 0] = np.nan
    save_safetensors(tensors, folder / "model.safetensors")
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="up_proj.weight holds NaN"):
        GPT.from_hf(folder)


def test_from_hf_tied_head_must_equal_embedding_and_old_buffers_are_skipped(tmp_path):
    pytest.importorskip("torch")
    from nanoframe.io import load_safetensors, save_safetensors

    folder, _ = hf_folder(tmp_path, "llama", tie=True)
    tensors = load_safetensors(folder / "model.safetensors")
    tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = np.ones(4, np.float32)   # transformers 4.3x files
    tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].copy()
    save_safetensors(tensors, folder / "model.safetensors")
    GPT.from_hf(folder)
    tensors["lm_head.weight"][0, 0] += 1.0
    save_safetensors(tensors, folder / "model.safetensors")
    with pytest.raises(ConfigError, match="lm_head.weight differs"):
        GPT.from_hf(folder)


# ---- the model itself ----------------------------------------------------------------------------------
CONFIGS = [
    llama_config(),
    llama_config(tie_word_embeddings=True, n_kv_head=1),
    llama_config(qkv_bias=True),
    llama_config(qkv_proj="packed", attention_bias=True, mlp_bias=True),
    llama_config(norm="layernorm", bias=True, mlp="gelu", mlp_hidden=0),                 # GPT-2 with RoPE and GQA
    GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=4, n_embd=16, bias=False, n_kv_head=2),
    GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8, mlp="swiglu", tie_word_embeddings=False),
    GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=range(len(CONFIGS)))
def test_parameter_shapes_equal_the_built_model(cfg):
    from nanoframe.nn.lora import apply_lora
    from nanoframe.training.checkpoint import expected_shapes
    from nanoframe.training.checkpoint import model_tensors

    model = GPT(cfg)
    assert parameter_shapes(cfg) == {n: p.shape for n, p in model.named_parameters()}
    assert set(linear_shapes(cfg)) == {n for n, m in model.named_modules() if isinstance(m, nf.nn.Linear)}
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "c_attn", "c_proj", "c_fc"]
    apply_lora(model, targets=targets, r=2)
    state = {"model_config": cfg.to_dict(), "lora": {"targets": targets, "r": 2}}
    assert expected_shapes(state) == {n: a.shape for n, a in model_tensors(model).items()}


def test_kv_cache_holds_only_the_kv_heads_and_matches_the_uncached_forward():
    nf.manual_seed(0)
    for nkv in (1, 2, 4):
        cfg = llama_config(n_kv_head=nkv, block_size=12)
        model = GPT(cfg).eval()
        for _, p in model.named_parameters():
            p.array[...] = p.array * 8.0 if p.ndim == 2 else p.array
        ids = np.random.default_rng(nkv).integers(0, 61, size=(2, 12))
        ref = model(ids)[0].array
        cache = KVCache(cfg, batch_size=2)
        assert cache.k[0].shape == (2, nkv, 12, 8) and cache.nbytes == 2 * 2 * 2 * nkv * 12 * 8 * 4
        out = [model(ids[:, :4], cache=cache)[0]] + [model(ids[:, t:t + 1], cache=cache)[0] for t in range(4, 12)]
        np.testing.assert_allclose(np.concatenate(out, axis=1), ref, rtol=1e-4, atol=1e-4)
        a = model.generate(ids[:, :3], 20, temperature=0.9, top_k=10, seed=1)        # the window slides past 12
        b = model.generate(ids[:, :3], 20, temperature=0.9, top_k=10, seed=1, use_cache=False)
        np.testing.assert_array_equal(a, b)


def test_gradcheck_tiny_llama_float64():
    nf.manual_seed(0)
    cfg = llama_config(vocab_size=7, block_size=4, n_layer=1, n_head=4, n_embd=8, n_kv_head=2, mlp_hidden=6,
                       qkv_bias=True, tie_word_embeddings=False)
    model = GPT(cfg).double()
    for _, p in model.named_parameters():
        p.array[...] = np.random.default_rng(p.array.size).normal(0.5 if p.ndim == 1 else 0.0, 0.5, p.shape)
    idx, tgt = np.array([[1, 5, 2, 0], [6, 0, 3, 3]]), np.array([[5, 2, 6, 1], [0, -100, 4, 2]])
    names = ["transformer.wte.weight", "transformer.h.0.attn.k_proj.weight", "transformer.h.0.attn.q_proj.bias",
             "transformer.h.0.ln_1.weight", "transformer.h.0.mlp.gate_proj.weight", "transformer.ln_f.weight",
             "lm_head.weight"]
    errors = gradcheck(lambda *ps: model(idx, tgt)[1], [model.get_parameter(n) for n in names], atol=1e-7, rtol=1e-5)
    assert all(e < 1e-5 for e in errors), errors


def test_overfits_one_batch_and_counts():
    nf.manual_seed(0)
    cfg = llama_config(vocab_size=16, block_size=8, tie_word_embeddings=False)
    model = GPT(cfg)
    rng = np.random.default_rng(0)
    idx, tgt = rng.integers(0, 16, (4, 8)), rng.integers(0, 16, (4, 8))
    opt = model.configure_optimizer(weight_decay=0.0, lr=1e-2)
    for _ in range(300):
        _, loss = model(idx, tgt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.05:
            break
    assert loss.item() < 0.1
    C, V, L, H = 32, 16, 2, 40
    per_block = 2 * C + C * 32 + 2 * C * 16 + 32 * C + 3 * C * H     # norms, q, k + v (2 of 4 heads), o, MLP
    total = 2 * V * C + L * per_block + C
    assert model.num_parameters(non_embedding=False) == total
    assert model.num_parameters() == total - V * C                    # wte is a lookup: lm_head is separate
    assert "transformer.wpe.weight" not in dict(model.named_parameters())


def test_config_validation_of_the_new_fields():
    for change, words in [(dict(n_kv_head=3), "multiple of GPTConfig.n_kv_head"), (dict(norm="batchnorm"), "norm"),
                          (dict(mlp="relu"), "mlp"), (dict(positions="alibi"), "positions"),
                          (dict(rope_theta=0.0), "rope_theta"), (dict(norm_eps=float("inf")), "norm_eps"),
                          (dict(mlp_hidden=-1), "mlp_hidden"), (dict(qkv_bias="no"), "qkv_bias"),
                          (dict(n_head=4, n_embd=12, n_kv_head=0), "even head size")]:
        with pytest.raises(ConfigError, match=words):
            llama_config(**change)
    assert GPTConfig(n_embd=48, n_head=4, mlp="swiglu").mlp_size == 128          # 8/3 * 48 = 128
    assert GPTConfig(n_embd=256, n_head=4, mlp="swiglu").mlp_size == 704         # 682.7 -> a multiple of 64
    assert GPTConfig(n_embd=256, n_head=4).mlp_size == 1024
    assert dataclasses.replace(llama_config(), n_kv_head=0).kv_heads == 4
