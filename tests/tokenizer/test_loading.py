"""load_tokenizer, find_tokenizer_files, train_tokenizer and tokenizer_fingerprint."""

import shutil

import pytest

from tests.tokenizer.hf_families import DATA, build
from nanoframe.errors import TokenizerError
from nanoframe.tokenizer import (
    BPETokenizer, CharTokenizer, find_tokenizer_files, load_tokenizer, tokenizer_fingerprint,
    train_tokenizer)

GPT2 = DATA / "gpt2"
TEXT = "the quick brown fox jumps over the lazy dog. 12345 naïve café 日本語 🙂\n" * 30


@pytest.fixture(scope="module")
def trained():
    return BPETokenizer().train(TEXT, 330, pattern="gpt4", special_tokens=["<|endoftext|>"],
                                show_progress=False)


def test_find_tokenizer_files(tmp_path):
    assert find_tokenizer_files(tmp_path) is None
    for name in ["encoder.json", "vocab.bpe"]:
        (tmp_path / name).write_text("{}")
    assert find_tokenizer_files(tmp_path) == (tmp_path / "encoder.json", tmp_path / "vocab.bpe")
    (tmp_path / "vocab.json").write_text("{}")  # without merges.txt: not a set
    assert find_tokenizer_files(tmp_path)[0].name == "encoder.json"
    (tmp_path / "merges.txt").write_text("")
    assert find_tokenizer_files(tmp_path) == (tmp_path / "vocab.json", tmp_path / "merges.txt")
    (tmp_path / "tokenizer.json").write_text("{}")
    assert find_tokenizer_files(tmp_path) == (tmp_path / "tokenizer.json",)


def test_load_every_kind(trained, tmp_path):
    trained.save(tmp_path / "nanoframe.json")
    trained.save_tokenizer_json(tmp_path / "hf.json")
    chars = CharTokenizer().train("hello")
    chars.save(tmp_path / "chars.json")
    assert load_tokenizer(tmp_path / "nanoframe.json").mergeable_ranks == trained.mergeable_ranks
    hf = load_tokenizer(tmp_path / "hf.json")
    assert hf.merge_rule == "merges" and hf.encode(TEXT) == trained.encode(TEXT)
    assert load_tokenizer(tmp_path / "chars.json").chars == chars.chars
    # folders: tokenizer.json of either kind, then the GPT-2 file pairs
    for name, source in [("a", "hf.json"), ("b", "nanoframe.json"), ("c", "chars.json")]:
        (tmp_path / name).mkdir()
        shutil.copy(tmp_path / source, tmp_path / name / "tokenizer.json")
        assert tokenizer_fingerprint(load_tokenizer(tmp_path / name)) == tokenizer_fingerprint(
            load_tokenizer(tmp_path / source))
    gpt2_style = BPETokenizer().train(TEXT, 300, special_tokens=["<|endoftext|>"],
                                      show_progress=False)
    for folder, names in [("d", ("vocab.json", "merges.txt")), ("e", ("encoder.json", "vocab.bpe"))]:
        (tmp_path / folder).mkdir()
        gpt2_style.save_gpt2_files(*(tmp_path / folder / n for n in names))
        loaded = load_tokenizer(tmp_path / folder)  # GPT-2 files: pattern "gpt2"
        assert loaded.encode(TEXT) == gpt2_style.encode(TEXT) and loaded.pattern == "gpt2"


def test_load_refusals(tmp_path):
    def refused(path, *words):
        with pytest.raises(TokenizerError) as err:
            load_tokenizer(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
        for word in words:
            assert word in str(err.value)
    refused(tmp_path, "tokenizer.json", "vocab.json + merges.txt", "encoder.json + vocab.bpe")
    refused(tmp_path / "missing.json", "no such")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    refused(tmp_path / "other.json", "not a tokenizer file")
    (tmp_path / "list.json").write_text("[1, 2]")
    refused(tmp_path / "list.json", "not a tokenizer file")
    (tmp_path / "binary.json").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    refused(tmp_path / "binary.json", "not UTF-8")
    (tmp_path / "cut.json").write_text('{"format": "nanoframe.BPETokenizer", "vers')
    refused(tmp_path / "cut.json", "truncated")


def test_train_tokenizer():
    bpe = train_tokenizer("bpe", iter([TEXT, "more text"]), vocab_size=300, show_progress=False)
    assert bpe.pattern == "gpt4" and bpe.vocab_size == 300 and bpe.eot_id == 299
    chars = train_tokenizer("char", ["abc", "cd"])
    assert chars.chars == ["a", "b", "c", "d"]
    assert train_tokenizer("char", ["abcdef", "xyz"], max_chars=4).chars == ["a", "b", "c", "d"]
    with pytest.raises(TokenizerError, match="unknown tokenizer kind 'wordpiece'"):
        train_tokenizer("wordpiece", ["abc"])


def test_fingerprint_is_stable_and_specific(trained):
    byte_level = BPETokenizer()
    # pinned: a change of this value invalidates every prepared dataset, so it must be deliberate
    assert tokenizer_fingerprint(byte_level) == PINNED_BYTE_LEVEL
    assert len(tokenizer_fingerprint(trained)) == 64
    ranks = trained.mergeable_ranks
    others = [
        BPETokenizer(ranks, "gpt2", trained.special_tokens),  # another pattern
        BPETokenizer(ranks, "gpt4", {"<|endoftext|>": 329, "<|pad|>": 330}),  # another special
        BPETokenizer(ranks, "gpt4", {"<|eot|>": 329}),
        BPETokenizer(ranks, "gpt4", trained.special_tokens, normalizer="nfc"),
        BPETokenizer(byte_level.mergeable_ranks, "gpt4"),
    ]
    prints = {tokenizer_fingerprint(t) for t in [trained, *others]}
    assert len(prints) == len(others) + 1
    assert tokenizer_fingerprint(CharTokenizer().train("ab")) != tokenizer_fingerprint(
        CharTokenizer().train("abc"))


def test_fingerprint_equal_across_file_formats(trained, tmp_path):
    trained.save(tmp_path / "t.json")
    trained.save_tokenizer_json(tmp_path / "tokenizer.json")
    trained.save_gpt2_files(tmp_path / "encoder.json", tmp_path / "vocab.bpe")
    trained.save_tiktoken_file(tmp_path / "t.tiktoken")
    loaded = [
        BPETokenizer.load(tmp_path / "t.json"),
        BPETokenizer.from_tokenizer_json(tmp_path / "tokenizer.json"),
        BPETokenizer.from_gpt2_files(tmp_path / "encoder.json", tmp_path / "vocab.bpe", "gpt4"),
        BPETokenizer.from_tiktoken_file(tmp_path / "t.tiktoken", "gpt4", trained.special_tokens),
    ]
    for tok in loaded:
        assert tokenizer_fingerprint(tok) == tokenizer_fingerprint(trained)
        assert tok.encode(TEXT) == trained.encode(TEXT)


def test_gpt2_fingerprint_equal_across_file_formats(tmp_path):
    if not (GPT2 / "encoder.json").exists():
        pytest.skip("shared GPT-2 files not found")
    pytest.importorskip("tokenizers")
    from_files = BPETokenizer.from_gpt2_files(GPT2 / "encoder.json", GPT2 / "vocab.bpe")
    loaded = [
        BPETokenizer.from_tiktoken_file(GPT2 / "gpt2.tiktoken", "gpt2", {"<|endoftext|>": 50256}),
        BPETokenizer.from_tokenizer_json(build("gpt2", tmp_path)),
        load_tokenizer(GPT2),
    ]
    from_files.save(tmp_path / "gpt2.json")
    loaded.append(load_tokenizer(tmp_path / "gpt2.json"))
    for tok in loaded:
        assert tokenizer_fingerprint(tok) == tokenizer_fingerprint(from_files)


PINNED_BYTE_LEVEL = "cddeaf2d2dd0b03743f9a22513c7a5bdcacd3dbdae2568cc05cb02838aeb924a"
