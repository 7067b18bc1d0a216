"""CharTokenizer: the character-level mode."""

import pytest

from nanoframe.tokenizer import CharTokenizer


def test_train_encode_decode(tmp_path):
    tok = CharTokenizer().train("hello world\n")
    assert tok.chars == sorted(set("hello world\n")) and tok.vocab_size == 9
    ids = tok.encode("hello")
    assert ids == [tok.token_to_id(c) for c in "hello"] and tok.decode(ids) == "hello"
    assert tok.encode_ordinary("od") == tok.encode("od") and tok.encode_batch(["o"]) == [[6]]
    assert tok.special_tokens == {} and tok.eot_id is None
    assert tok.decode_bytes(tok.encode("lo")) == b"lo"
    path = tmp_path / "chars.json"
    tok.save(path)
    assert CharTokenizer.load(path).chars == tok.chars


def test_iterable_and_unicode():
    tok = CharTokenizer().train(iter(["ab", "日本🙂"]))
    assert tok.decode(tok.encode("🙂ab日")) == "🙂ab日"


def test_errors(tmp_path):
    tok = CharTokenizer().train("abc")
    with pytest.raises(ValueError, match=r"'z' at position 2"):
        tok.encode("abz")
    for bad in [3, -1, "a"]:
        with pytest.raises(ValueError, match="invalid token id"):
            tok.decode([0, bad])
    with pytest.raises(ValueError, match="smaller"):
        CharTokenizer().train("abc", vocab_size=2)
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "nanoframe.CharTokenizer", "version": 1, "chars": ["a", "a"]}')
    with pytest.raises(ValueError, match="bad.json"):
        CharTokenizer.load(bad)
    bad.write_text('{"format": ')
    with pytest.raises(ValueError, match="bad.json"):
        CharTokenizer.load(bad)
