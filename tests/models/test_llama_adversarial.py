"""Hugging Face llama/qwen2 folders as people find them: config.json variants (transformers 4 and 5
spellings, missing and extra fields, wrong types), weight dtypes, odd shapes (head sizes 2 and 6,
multi-query, n_kv_head = n_head, one position), each either equal to transformers (logits and greedy
generation with the cache) or refused with one short line; LoRA models and to_hf."""
import json

import numpy as np
import pytest

import nanoframe as nf
from nanoframe.errors import ConfigError, NanoframeError
from nanoframe.models.gpt import GPT
from nanoframe.nn.lora import apply_lora

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def make_folder(path, model_type="llama", **kw):
    """A tiny random transformers model saved to `path`; norm weights and biases random too."""
    torch.manual_seed(0)
    args = {**dict(vocab_size=61, hidden_size=32, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, max_position_embeddings=32, rope_theta=500.0, rms_norm_eps=1e-6,
                   tie_word_embeddings=False), **kw}
    cls = {"llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
           "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM)}[model_type]
    model = cls[1](cls[0](**args)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(1.0 if name.endswith("norm.weight") else 0.0, 0.2 if p.ndim == 1 else 0.3)
    model.save_pretrained(path, safe_serialization=True)
    return path


def assert_equals_transformers(folder, T=9, new=8):
    """Our logits and greedy cached generation equal transformers' loading the same folder."""
    ours = GPT.from_hf(folder).eval()
    ref = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ref.generation_config.eos_token_id = None      # min_new_tokens would otherwise forbid the eos token
    T = min(T, ours.config.block_size)
    ids = np.random.default_rng(0).integers(0, ours.config.vocab_size, size=(2, T))
    prompt = ids[:, :min(3, T)]
    new = min(new, ours.config.block_size - prompt.shape[1])   # within the trained context (see the last test)
    with torch.no_grad():
        logits = ref(torch.tensor(ids)).logits.numpy()
    with nf.no_grad():
        np.testing.assert_allclose(ours(ids)[0].array, logits, rtol=1e-4, atol=1e-4 * np.abs(logits).max())
    if new > 0:
        with torch.no_grad():
            tokens = ref.generate(torch.tensor(prompt), attention_mask=torch.ones(prompt.shape, dtype=torch.long),
                                  max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0).numpy()
        np.testing.assert_array_equal(ours.generate(prompt, new, temperature=0.0), tokens)


def edit_config(folder, **changes):
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    for key, value in changes.items():
        if value is KeyError:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    path.write_text(json.dumps(cfg))
    return folder


def assert_one_line(exc_info, *words):
    msg = str(exc_info.value)
    assert "\n" not in msg and len(msg) < 400, msg
    for w in words:
        assert w in msg, msg


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("hf") / "llama")


def copy_of(folder, tmp_path):
    import shutil

    return shutil.copytree(folder, tmp_path / "copy")


@pytest.mark.parametrize("model_type,kw", [
    ("llama", dict(hidden_size=8, num_attention_heads=4, num_key_value_heads=1)),      # head size 2, MQA
    ("llama", dict(hidden_size=12, num_attention_heads=2, num_key_value_heads=1)),     # head size 6
    ("qwen2", dict(hidden_size=24, num_attention_heads=4, num_key_value_heads=2)),     # head size 6, GQA
    ("llama", dict(num_key_value_heads=4)),                                             # n_kv_head = n_head
    ("qwen2", dict(hidden_size=32, num_attention_heads=8, num_key_value_heads=1)),
    ("llama", dict(max_position_embeddings=1)),                                        # block_size 1
    ("llama", dict(max_position_embeddings=2, intermediate_size=1, vocab_size=2)),
])
def test_odd_shapes_equal_transformers(tmp_path, model_type, kw):
    assert_equals_transformers(make_folder(tmp_path / "m", model_type, **kw))


@pytest.mark.parametrize("changes", [
    dict(head_dim=KeyError),                                       # older files: hidden / heads
    dict(head_dim=None),
    dict(rope_parameters=KeyError, rope_theta=500.0, rope_scaling=None),     # transformers 4 spelling
    dict(rope_parameters=KeyError, rope_theta=500.0, rope_scaling={}),
    dict(rope_parameters=KeyError, rope_theta=500.0, rope_scaling={"type": "default"}),
    dict(rope_parameters={"rope_type": "default"}, rope_theta=500.0),
    dict(rope_parameters={"rope_theta": 500}),                     # an int theta, no type
    dict(rope_parameters=KeyError),                                # no theta anywhere: 10000
    dict(rope_parameters={"rope_type": "default", "rope_theta": 500.0, "factor": 1.0}),
    dict(hidden_act="swish", pretraining_tp=2, foo={"bar": [1]}, quantization_config=None),
    dict(tie_word_embeddings=KeyError, rms_norm_eps=KeyError),     # llama's defaults: untied, 1e-6
])
def test_config_spellings_equal_transformers(tmp_path, llama_dir, changes):
    assert_equals_transformers(edit_config(copy_of(llama_dir, tmp_path), **changes), new=0)   # logits: cheaper


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float64"])
def test_weights_in_other_dtypes_load(tmp_path, llama_dir, dtype):
    from safetensors.torch import load_file, save_file

    folder = copy_of(llama_dir, tmp_path)
    tensors = load_file(folder / "model.safetensors")
    save_file({k: v.to(getattr(torch, dtype)) for k, v in tensors.items()}, folder / "model.safetensors",
              metadata={"format": "pt"})
    assert_equals_transformers(folder, new=0)


def test_tied_head_absent_or_equal_and_untied_head_absent(tmp_path, llama_dir):
    from safetensors.torch import load_file, save_file

    folder = copy_of(llama_dir, tmp_path)
    tensors = load_file(folder / "model.safetensors")
    tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].clone()
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    assert_equals_transformers(folder)                                 # untied, equal values: fine
    assert_equals_transformers(edit_config(folder, tie_word_embeddings=True))
    del tensors["lm_head.weight"]
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    assert_equals_transformers(folder)                                 # tied and absent
    with pytest.raises(ConfigError) as e:
        GPT.from_hf(edit_config(folder, tie_word_embeddings=False))
    assert_one_line(e, "missing key(s) ['lm_head.weight']")


@pytest.mark.parametrize("changes,words", [
    (dict(num_key_value_heads=KeyError), ("shape mismatch for transformer.h.0.attn.k_proj.weight", "and 3 more")),
    (dict(num_key_value_heads=None), ("shape mismatch", "(and 3 more)")),
    (dict(intermediate_size=48), ("shape mismatch for transformer.h.0.mlp", "and 5 more")),
    (dict(num_hidden_layers=1), ("unexpected key(s)", "model.layers.1.", "more")),
    (dict(num_hidden_layers=3), ("missing key(s)", "transformer.h.2.", "more")),
    (dict(attention_bias=True), ("missing key(s)", ".bias", "more")),
    (dict(quantization_config={"quant_method": "gptq", "bits": 4}), ("quantized checkpoints",)),
    (dict(model_type=KeyError), ("missing field 'n_positions'",)),    # read as gpt2, as transformers does
])
def test_mismatched_folders_are_refused_with_one_short_line(tmp_path, llama_dir, changes, words):
    folder = edit_config(copy_of(llama_dir, tmp_path), **changes)
    with pytest.raises(ConfigError) as e:
        GPT.from_hf(folder)
    assert_one_line(e, *words)


def test_qwen2_folder_without_its_biases_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    folder = make_folder(tmp_path / "q", "qwen2", tie_word_embeddings=True)
    tensors = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in tensors.items() if not k.endswith("bias")}, folder / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(ConfigError) as e:
        GPT.from_hf(folder)
    assert_one_line(e, "missing key(s)", "q_proj.bias")


def test_to_hf_of_a_lora_model_is_one_line_and_after_merge_opens_in_transformers(tmp_path, llama_dir):
    from nanoframe.nn.lora import merge_lora

    model = GPT.from_hf(llama_dir)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    apply_lora(model, targets=targets, r=2)
    for name, p in model.named_parameters():
        if "lora_" in name:
            p.array[...] = np.random.default_rng(len(name)).normal(0, 0.2, p.shape)
    ids = np.random.default_rng(3).integers(0, 61, size=(2, 11))
    with nf.no_grad():
        adapted = model.eval()(ids)[0].array
    with pytest.raises(NanoframeError) as e:
        model.to_hf(tmp_path / "lora")
    assert_one_line(e, "merge them first")
    merge_lora(model).to_hf(tmp_path / "merged")
    ref = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        theirs = ref(torch.tensor(ids)).logits.numpy()
    np.testing.assert_allclose(theirs, adapted, rtol=1e-4, atol=1e-4)


def test_generation_past_block_size_keeps_the_trained_window(tmp_path):
    """Past max_position_embeddings nanoframe attends to the last block_size tokens (the context it
    was trained on, as for GPT-2) where transformers extends the context: the cached path equals
    the uncached one, and up to block_size both equal transformers."""
    folder = make_folder(tmp_path / "m", max_position_embeddings=8)
    assert_equals_transformers(folder, T=8, new=5)
    ours = GPT.from_hf(folder)
    prompt = np.array([[3, 1, 4, 1, 5]])
    cached = ours.generate(prompt, 20, temperature=0.0)
    np.testing.assert_array_equal(cached, ours.generate(prompt, 20, temperature=0.0, use_cache=False))
    ids = prompt
    for _ in range(20):                                                 # the window by hand
        with nf.no_grad():
            logits = ours(ids[:, -8:])[0].array[:, -1]
        ids = np.concatenate([ids, logits.argmax(-1)[:, None]], axis=1)
    np.testing.assert_array_equal(cached, ids)
