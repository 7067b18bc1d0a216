"""Instruction data: JSONL parsing and errors, completion-only targets, packing, batches."""
import json

import numpy as np
import pytest

import nanoframe.functional as F
from nanoframe import tensor
from nanoframe.data import DataError
from nanoframe.models import GPT, GPTConfig
from nanoframe.random import manual_seed
from nanoframe.tokenizer import BPETokenizer, CharTokenizer
from nanoframe.data.instructions import (
    IGNORE_INDEX,
    InstructionData,
    encode_record,
    pack,
    read_jsonl,
)

EOT = 256


def _tok():
    return BPETokenizer(special_tokens={"<|endoftext|>": EOT})  # byte-level, plus an end-of-text


def _write(tmp_path, lines, name="d.jsonl"):
    p = tmp_path / name
    p.write_text("".join((json.dumps(x) if not isinstance(x, str) else x) + "\n" for x in lines))
    return p


def test_prompt_positions_get_ignore_index_and_eot_ends_each_example(tmp_path):
    p = _write(tmp_path, [{"prompt": "ab=", "completion": "ba"}])
    (segments, eot_trained), = read_jsonl(p)
    ids, trained = encode_record(segments, eot_trained, _tok())
    assert ids.tolist() == [97, 98, 61, 98, 97, EOT]
    assert trained.tolist() == [False, False, False, True, True, True]
    x, y, cut = pack([(ids, trained)], block_size=8, pad_id=EOT)
    assert x.tolist() == [[97, 98, 61, 98, 97, EOT, EOT, EOT]]
    assert y.tolist() == [[-100, -100, 98, 97, EOT, -100, -100, -100]] and cut == 0


def test_chat_messages_train_on_assistant_content_only(tmp_path):
    p = _write(tmp_path, [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}])
    (segments, eot_trained), = read_jsonl(p)
    ids, trained = encode_record(segments, eot_trained, _tok())
    text = bytes(i for i in ids[:-1]).decode()
    assert text == "user: hi\nassistant: yo\n"
    assert bytes(i for i, t in zip(ids, trained) if t and i != EOT).decode() == "yo\n" and trained[-1]


def test_loss_ignores_prompt_targets_and_their_logits_get_no_gradient(tmp_path):
    rows = [{"prompt": f"{a}+{b}=", "completion": str(a + b)} for a in range(10, 16) for b in range(20, 24)]
    data = InstructionData.from_jsonl(_write(tmp_path, rows), _tok(), block_size=32, batch_size=4, seed=0)
    x, y = data.get_batch("train")
    masked = y == IGNORE_INDEX
    assert masked.any() and (~masked).any()
    manual_seed(0)
    model = GPT(GPTConfig(vocab_size=257, block_size=32, n_layer=1, n_head=2, n_embd=16))
    logits = tensor(model(x)[0].array, requires_grad=True)
    loss = F.cross_entropy(logits.reshape(-1, 257), y.reshape(-1), ignore_index=IGNORE_INDEX)   # (B*T, V) rows
    loss.backward()
    assert np.all(logits.grad_array[masked] == 0) and np.abs(logits.grad_array[~masked]).sum() > 0
    # what the prompt targets would have been does not matter: same model loss
    y2 = np.where(masked, x, y)  # unmasked: prompt tokens as targets
    _, l1 = model(x, y)
    _, l2 = model(x, np.where(masked, IGNORE_INDEX, y2))
    assert l1.item() == l2.item()
    assert model(x, y2)[1].item() != l1.item()


def test_packing_split_batches_and_state_are_deterministic(tmp_path):
    rows = [{"prompt": "q" * (i % 5), "completion": "a" * (1 + i % 3)} for i in range(40)]
    path = _write(tmp_path, rows)
    a = InstructionData.from_jsonl(path, _tok(), block_size=16, batch_size=3, seed=5)
    b = InstructionData.from_jsonl(path, _tok(), block_size=16, batch_size=3, seed=5)
    assert a.info["val_examples"] == 4 and a.info["train_examples"] == 36
    assert len(a.x_train) < 36  # several short examples share a row
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_val, b.y_val)
    assert a.block_size == 16 and a.x_train.shape[1] == 16 and a.x_train.dtype == np.int64
    state = a.state_dict()
    x1, _ = a.get_batch("train")
    a.load_state_dict(state)
    assert np.array_equal(a.get_batch("train")[0], x1)
    assert all(np.array_equal(p[0], q[0]) for p, q in zip(a.val_batches(5), b.val_batches(5)))
    for x, y in a.val_batches():
        assert (y != IGNORE_INDEX).any(axis=1).all()  # every row has something to learn
    assert len(a.val_batches(1)) == 1 and len(a.val_batches()) == -(-len(a.x_val) // 3)


@pytest.mark.parametrize("lines,lineno,words", [
    (['{"prompt": "a", "completion": "b"}', '{"prompt": "a", "completion": '], 2, "invalid JSON"),
    (['{"prompt": "a", "completion": "b"}', "", '{"prompt": "a"}'], 3, "missing key"),
    (['{"prompt": 3, "completion": "b"}'], 1, '"prompt" must be a string'),
    (['[1, 2]'], 1, "expected a JSON object"),
    (['{"messages": [{"role": "user", "content": "x"}]}'], 1, "no non-empty assistant"),
    (['{"messages": [{"role": "user"}]}'], 1, "messages\\[0\\]"),
])
def test_malformed_records_name_file_and_line(tmp_path, lines, lineno, words):
    path = _write(tmp_path, lines)
    with pytest.raises(DataError, match=rf"d\.jsonl:{lineno}: .*{words}"):
        read_jsonl(path)


def test_empty_file_and_tokenizer_without_eot_are_refused(tmp_path):
    with pytest.raises(DataError, match="empty"):
        read_jsonl(_write(tmp_path, ["", "  "]))
    path = _write(tmp_path, [{"prompt": "a", "completion": "b"}] * 3, "ok.jsonl")
    with pytest.raises(DataError, match="end-of-text"):
        InstructionData.from_jsonl(path, CharTokenizer().train("ab"), 8, 2)
    with pytest.raises(DataError, match="at least 2 records"):
        InstructionData.from_jsonl(_write(tmp_path, [{"prompt": "a", "completion": "b"}], "one.jsonl"), _tok(), 8, 2)
