"""set_dropout (what `finetune --dropout` changes) and generate_completion (the greedy answer the
CLI prints after an instruction fine-tune)."""
import numpy as np
import pytest

from nanoframe import data as D
from nanoframe import nn
from nanoframe.errors import ConfigError
from nanoframe.models import GPT, GPTConfig
from nanoframe.models.gpt import CausalSelfAttention
from nanoframe.random import manual_seed
from nanoframe.training.finetune import generate_completion, set_dropout

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\n") * 20


def _gpt(vocab_size=64, block_size=16, dropout=0.0, **kw):
    manual_seed(0)
    return GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=2, n_head=2, n_embd=16,
                         dropout=dropout, **kw))


def _dropouts(model):
    """(every nn.Dropout's p, every attention's dropout) of a model."""
    return ([m.p for m in model.modules() if isinstance(m, nn.Dropout)],
            [m.dropout for m in model.modules() if isinstance(m, CausalSelfAttention)])


@pytest.mark.parametrize("arch", [{}, dict(norm="rmsnorm", mlp="swiglu", positions="rope", qkv_proj="split",
                                            bias=False)])
def test_set_dropout_changes_every_dropout_and_the_config(arch):
    model = _gpt(**arch)
    drops, attn = _dropouts(model)
    # embeddings, and per block the attention's residual branch and the MLP's
    assert len(drops) == 1 + 2 * 2 and len(attn) == 2 and set(drops + attn) == {0.0}
    x = np.arange(12).reshape(1, 12) % 64
    model.train()
    before = model(x)[0].array.copy()
    assert set_dropout(model, 0.5) is model
    assert model.config.dropout == 0.5
    assert _dropouts(model) == ([0.5] * 5, [0.5] * 2)
    manual_seed(1)
    dropped = model(x)[0].array
    assert not np.allclose(dropped, before)          # training now drops activations
    model.eval()
    np.testing.assert_array_equal(model(x)[0].array, before)   # eval mode: dropout is off
    set_dropout(model, 0)
    model.train()
    np.testing.assert_array_equal(model(x)[0].array, before)
    assert isinstance(model.config.dropout, float) and _dropouts(model) == ([0.0] * 5, [0.0] * 2)


@pytest.mark.parametrize("p", [1.0, -0.1, float("nan"), "0.2"])
def test_set_dropout_refuses_a_bad_probability_and_changes_nothing(p):
    model = _gpt(dropout=0.1)
    with pytest.raises(ConfigError, match="dropout"):
        set_dropout(model, p)
    assert model.config.dropout == 0.1 and _dropouts(model) == ([0.1] * 5, [0.1] * 2)


class _EotAt:
    """The BPE tokenizer with its end-of-text id replaced (generate_completion reads only these three)."""

    def __init__(self, tok, eot_id):
        self.tok, self.eot_id = tok, eot_id

    def encode_ordinary(self, text):
        return self.tok.encode_ordinary(text)

    def decode(self, ids):
        return self.tok.decode(ids)


def _greedy(model, ids, n):
    """n greedy continuations of ids, one full forward per token (no KV cache)."""
    ids = list(ids)
    for _ in range(n):
        logits = model(np.asarray([ids[-model.config.block_size:]], np.int64))[0].array
        ids.append(int(np.argmax(logits[0, -1])))
    return ids


@pytest.fixture(scope="module")
def bpe():
    return D.train_tokenizer("bpe", [TEXT], vocab_size=300, show_progress=False)


def test_generate_completion_is_greedy_and_stops_at_the_end_of_text_token(bpe):
    model = _gpt(vocab_size=bpe.vocab_size).eval()
    prompt = "First Citizen:\nBefore we"
    ids = bpe.encode_ordinary(prompt)
    greedy = _greedy(model, ids, 8)[len(ids):]
    # with the real end-of-text id (which this untrained model does not pick) all 8 tokens come back
    assert bpe.eot_id not in greedy
    assert generate_completion(model, bpe, prompt, 8) == bpe.decode(greedy)
    # declare the 4th greedy token the end of text: the completion is the 3 tokens before it
    stop = greedy[3]
    first = greedy.index(stop)
    assert generate_completion(model, _EotAt(bpe, stop), prompt, 8) == bpe.decode(greedy[:first])


def test_generate_completion_keeps_the_last_block_size_tokens_of_a_long_prompt(bpe):
    model = _gpt(vocab_size=bpe.vocab_size, block_size=16).eval()
    prompt = TEXT[:400]
    ids = bpe.encode_ordinary(prompt)
    assert len(ids) > 16
    expected = bpe.decode(_greedy(model, ids[-16:], 5)[16:])
    assert generate_completion(model, bpe, prompt, 5) == expected
    assert generate_completion(model, bpe, prompt, 0) == ""
