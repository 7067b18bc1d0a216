"""GPT-2 and tiktoken files: import, export, parity with the real GPT-2 tokenizer."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nanoframe.tokenizer import BPETokenizer
from nanoframe.tokenizer.formats import bytes_to_unicode, token_to_str

from tests.helpers import SHARED_DATA as DATA

GPT2 = DATA / "gpt2"


@pytest.fixture(scope="module")
def gpt2():
    if not (GPT2 / "encoder.json").exists():
        pytest.skip("shared GPT-2 files not found")
    return BPETokenizer.from_gpt2_files(GPT2 / "encoder.json", GPT2 / "vocab.bpe")


@pytest.fixture(scope="module")
def tiktoken_gpt2():
    """tiktoken's own GPT-2 encoding, built by tiktoken's loader from the same files."""
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    if not (GPT2 / "encoder.json").exists():
        pytest.skip("shared GPT-2 files not found")
    ranks = data_gym_to_mergeable_bpe_ranks(str(GPT2 / "vocab.bpe"), str(GPT2 / "encoder.json"))
    from tiktoken_ext.openai_public import r50k_pat_str
    return tiktoken.Encoding("gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256})


def test_bytes_to_unicode():
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert token_to_str(b" the") == "Ġthe" and token_to_str(b"\n") == "Ċ"


def test_reference_strings(gpt2):
    assert gpt2.vocab_size == 50257 and gpt2.eot_id == 50256
    for case in json.loads((GPT2 / "tokenizer_reference.json").read_text(encoding="utf-8")):
        if case.get("note") == "allowed_special='all'":
            ids = gpt2.encode(case["text"], allowed_special="all")
        else:
            ids = gpt2.encode(case["text"], disallowed_special=())
        assert ids == case["ids"], case["text"]
        assert gpt2.decode(ids) == case["text"]


def test_tinyshakespeare_matches_tiktoken(gpt2, tiktoken_gpt2):
    path = DATA / "tinyshakespeare.txt"
    if not path.exists():
        pytest.skip("tinyshakespeare.txt not found")
    text = path.read_text(encoding="utf-8")
    ids = gpt2.encode(text)
    assert ids == tiktoken_gpt2.encode(text)
    assert gpt2.decode(ids) == text


@settings(max_examples=200, deadline=None)
@given(text=st.text(st.one_of(st.characters(), st.sampled_from(" \n'sé🙂1<|endoftext|>")),
                    max_size=80))
def test_arbitrary_text_matches_tiktoken(gpt2, tiktoken_gpt2, text):
    # st.characters() includes lone surrogates: both sides replace them the same way
    assert gpt2.encode(text, allowed_special="all") == tiktoken_gpt2.encode(
        text, allowed_special="all")
    assert gpt2.encode_ordinary(text) == tiktoken_gpt2.encode_ordinary(text)


def test_tiktoken_file_equals_gpt2_files(gpt2):
    tok = BPETokenizer.from_tiktoken_file(GPT2 / "gpt2.tiktoken", "gpt2",
                                          {"<|endoftext|>": 50256})
    assert tok.mergeable_ranks == gpt2.mergeable_ranks
    assert tok.special_tokens == gpt2.special_tokens


def test_export_gpt2_reproduces_the_original_files(gpt2, tmp_path):
    enc, bpe = tmp_path / "encoder.json", tmp_path / "vocab.bpe"
    gpt2.save_gpt2_files(enc, bpe)
    original = json.loads((GPT2 / "encoder.json").read_text(encoding="utf-8"))
    assert json.loads(enc.read_text(encoding="utf-8")) == original
    merges = lambda p: p.read_text(encoding="utf-8").split("\n")[1:]
    assert [m for m in merges(bpe) if m] == [m for m in merges(GPT2 / "vocab.bpe") if m]
    # without stored merges, the canonical split from the ranks gives the same file
    no_merges = BPETokenizer(gpt2.mergeable_ranks, "gpt2", gpt2.special_tokens)
    no_merges.save_gpt2_files(tmp_path / "e2.json", tmp_path / "v2.bpe")
    assert merges(tmp_path / "v2.bpe") == merges(bpe)


def test_export_tiktoken_roundtrip(gpt2, tmp_path):
    path = tmp_path / "gpt2.tiktoken"
    gpt2.save_tiktoken_file(path)
    assert path.read_bytes() == (GPT2 / "gpt2.tiktoken").read_bytes()


def test_trained_tokenizer_through_both_formats(tmp_path):
    text = "the quick brown fox jumps over the lazy dog. " * 20 + "日本語 🙂 naïve café\n"
    tok = BPETokenizer().train(text, 320, pattern="gpt4", special_tokens=["<|endoftext|>"],
                               show_progress=False)
    tok.save_gpt2_files(tmp_path / "encoder.json", tmp_path / "vocab.bpe")
    tok.save_tiktoken_file(tmp_path / "tok.tiktoken")
    from_gpt2 = BPETokenizer.from_gpt2_files(tmp_path / "encoder.json", tmp_path / "vocab.bpe",
                                             pattern="gpt4")
    from_tt = BPETokenizer.from_tiktoken_file(tmp_path / "tok.tiktoken", "gpt4",
                                              tok.special_tokens)
    for other in (from_gpt2, from_tt):
        assert other.mergeable_ranks == tok.mergeable_ranks
        assert other.special_tokens == tok.special_tokens
        assert other.encode(text) == tok.encode(text)
    pytest.importorskip("tiktoken")
    from tiktoken.load import load_tiktoken_bpe
    assert load_tiktoken_bpe(str(tmp_path / "tok.tiktoken")) == tok.mergeable_ranks


def test_corrupt_files(gpt2, tmp_path):
    enc, bpe = tmp_path / "encoder.json", tmp_path / "vocab.bpe"
    gpt2.save_gpt2_files(enc, bpe)
    cut = tmp_path / "cut_encoder.json"
    cut.write_text(enc.read_text(encoding="utf-8")[:5000], encoding="utf-8")
    with pytest.raises(ValueError, match="cut_encoder.json"):
        BPETokenizer.from_gpt2_files(cut, bpe)
    bad_bpe = tmp_path / "bad_vocab.bpe"
    bad_bpe.write_text("#version: 0.2\nĠ t\nĠt\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad_vocab.bpe: line 3"):
        BPETokenizer.from_gpt2_files(enc, bad_bpe)
    bad_tt = tmp_path / "bad.tiktoken"
    bad_tt.write_text("IQ== 0\nnot-base64!! 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.tiktoken: line 2"):
        BPETokenizer.from_tiktoken_file(bad_tt)
    short_tt = tmp_path / "short.tiktoken"
    short_tt.write_text("IQ== 0\n", encoding="utf-8")
    with pytest.raises(ValueError, match="short.tiktoken.*256 byte tokens"):
        BPETokenizer.from_tiktoken_file(short_tt)
