"""nanoframe.data: corpus discovery, token files, batch sampling."""
import json

import numpy as np
import pytest

from nanoframe import data as D
from nanoframe.tokenizer import BPETokenizer, CharTokenizer

TEXT = "hello world. the quick brown fox jumps over the lazy dog.\n" * 40


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_find_files_recurses_sorted_and_names_missing(tmp_path):
    _write(tmp_path, "b/z.txt", "z")
    _write(tmp_path, "a.txt", "a")
    _write(tmp_path, "b/skip.md", "m")
    assert [p.name for p in D.find_files([tmp_path])] == ["a.txt", "z.txt"]
    with pytest.raises(D.DataError, match="no such file or folder: .*nope"):
        D.find_files([tmp_path / "nope"])
    with pytest.raises(D.DataError, match="no files matching"):
        D.find_files([tmp_path / "b"], glob="*.csv")


def test_read_text_latin1_and_crlf(tmp_path):
    p = tmp_path / "x.txt"
    p.write_bytes("caf\xe9\r\nline".encode("latin-1"))
    assert D.read_text(p) == "caf\xe9\nline"


def test_split_single_document_by_position_and_many_by_document():
    train, val = D.split_documents([D.Document("a", "x" * 100)])
    assert len(train[0].text) == 90 and len(val[0].text) == 10
    docs = [D.Document(str(i), f"doc {i}") for i in range(20)]
    train, val = D.split_documents(docs)
    assert len(val) == 2 and len(train) == 18
    assert {d.name for d in train}.isdisjoint({d.name for d in val})
    assert D.split_documents(docs) == (train, val)  # deterministic
    with pytest.raises(D.DataError, match="empty"):
        D.split_documents([])


def test_prepare_writes_uint16_tokens_with_eot_between_documents(tmp_path):
    tok = BPETokenizer().train(TEXT, 280, special_tokens=["<|endoftext|>"], show_progress=False)
    docs = [D.Document("a", "hello world"), D.Document("b", "the fox")]
    meta = D.prepare(docs, [D.Document("c", "lazy dog")], tok, tmp_path / "d", show_progress=False)
    ids = np.fromfile(tmp_path / "d" / "train.bin", dtype=np.uint16)
    expected = tok.encode_ordinary("hello world") + [tok.eot_id] + tok.encode_ordinary("the fox") + [tok.eot_id]
    assert ids.tolist() == expected
    assert meta["dtype"] == "uint16" and meta["train_tokens"] == len(expected)
    assert json.loads((tmp_path / "d" / "meta.json").read_text())["vocab_size"] == tok.vocab_size == 280
    assert D.token_dtype(70000) == np.uint32
    assert type(D.load_tokenizer(tmp_path / "d" / "tokenizer.json")) is BPETokenizer


def _prepared(tmp_path, text=TEXT):
    tok = CharTokenizer().train(text)
    train, val = D.split_documents([D.Document("t", text)])
    D.prepare(train, val, tok, tmp_path / "d", show_progress=False)
    return tok, tmp_path / "d"


def test_batches_are_shifted_windows_and_seeded(tmp_path):
    tok, d = _prepared(tmp_path)
    data = D.TokenData(d, block_size=8, batch_size=4, seed=3)
    x, y = data.get_batch("train")
    assert x.shape == y.shape == (4, 8) and x.dtype == np.int64
    assert np.array_equal(x[:, 1:], y[:, :-1])
    full = np.fromfile(d / "train.bin", dtype=np.uint16)
    for row_x, row_y in zip(x, y):  # each row is a real window of the corpus
        starts = [s for s in range(len(full) - 8) if np.array_equal(full[s:s + 8], row_x)]
        assert any(np.array_equal(full[s + 1:s + 9], row_y) for s in starts)
    state = data.state_dict()
    x2, _ = data.get_batch("train")
    data.load_state_dict(state)
    assert np.array_equal(data.get_batch("train")[0], x2)
    assert type(D.load_tokenizer(d / "tokenizer.json")) is CharTokenizer


def test_val_batches_are_fixed_and_cover_the_split(tmp_path):
    _, d = _prepared(tmp_path)
    data = D.TokenData(d, block_size=8, batch_size=4)
    full = data.val_batches()
    n_val = len(np.fromfile(d / "val.bin", dtype=np.uint16))
    assert sum(len(x) for x, _ in full) == len(range(0, n_val - 8, 8))
    a, b = data.val_batches(2), data.val_batches(2)
    assert len(a) == 2 and all(np.array_equal(p[0], q[0]) for p, q in zip(a, b))


def test_block_size_larger_than_data_is_refused(tmp_path):
    _, d = _prepared(tmp_path, "tiny text " * 20)
    with pytest.raises(D.DataError, match="fewer than block_size"):
        D.TokenData(d, block_size=500, batch_size=2)


def test_stdlib_corpus_holds_out_a_package():
    train, held = D.stdlib_files()
    assert held and all(f.parent.name == D.DEFAULT_HOLDOUT for f in held)
    assert not any(D.DEFAULT_HOLDOUT == f.relative_to(D.stdlib_dir()).parts[0] for f in train)
    assert not any(p.startswith("test") for f in train for p in f.relative_to(D.stdlib_dir()).parts)
