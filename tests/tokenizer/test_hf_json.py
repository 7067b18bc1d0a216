"""Hugging Face tokenizer.json: same ids as `tokenizers` in, files `tokenizers` reads the same out.

The corpus test encodes a sample of every text file of ../shared/data (every file's start, middle
and end); NANOFRAME_FULL_PARITY=1 encodes the whole corpora instead (about a minute per family).
"""

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tokenizer.hf_families import FAMILIES, build, corpus_texts, training_text
from nanoframe.errors import TokenizerError
from nanoframe.tokenizer import BPETokenizer
from nanoframe.tokenizer.normalize import fix_surrogates

tokenizers = pytest.importorskip("tokenizers")

FULL = os.environ.get("NANOFRAME_FULL_PARITY") == "1"
ADVERSARIAL = [
    "".join(chr(cp) for cp in range(0x20, 0x3000, 7)),  # a sweep through the BMP
    "".join(chr(p * 0x10000 + off) for p in range(1, 17) for off in (0x30, 0x4E1, 0xFFFD)),
    "\U0001F468\u200D\U0001F469\u200D\U0001F467 \U0001F3F3\uFE0F\u200D\U0001F308 👍🏽👍🏿",  # ZWJ
    "e\u0301 e\u0301\u0327 a\u0308\u0304 \u1100\u1161\u11a8 q\u07fd\u0301 \u0f71\u0f72\u0f74",
    "\r\n" * 7 + "x\r\n\r\n  \r\ny\r\r\n\n\n\t \u3000\u00a0\u2028\u2029\u0085 z",
    "1234567890123456789 ١٢٣٤٥٦ १२३ 𝟘𝟙𝟚 ½¾ Ⅻ 3.14159 -42 0x1F 1,000,000",
    "don't DON'T it’s it‘s ʼtwas I'LL we'Ve y'ALL ſ'ſ 'S's K'K",  # apostrophes
    "\u1C89\u1C8A \U00031350 \U00010D40 \U0001E030\U0001E5D0\U0001E5F1 \U000113B8\U00016D68 "
    "\U0001E4D0 \U0002EBF0 \U00011F02",  # Unicode 15 / 16 additions
    "\ufeff\u200b\u200c\u200d\u2060\u00ad\x00\x07\x1b\x7f \ue000\U000F0000 \uffff\ufffe",
    "CamelCaseWORDS lowerUPPER ǅungla ʰmod <|endoftext|> <|im_start|>user\nhi<|im_end|>",
    "   leading and trailing   \n\n\n", "", " ", "\n",
]
text_strategy = st.text(st.one_of(st.characters(), st.sampled_from(list("\r\n '1é日🙂\u0301"))),
                        max_size=60)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("families")


@pytest.fixture(scope="module", params=FAMILIES)
def family(request, folder):
    """(name, path, nanoframe tokenizer, tokenizers tokenizer) of one family's tokenizer.json."""
    path = build(request.param, folder)
    return (request.param, path, BPETokenizer.from_tokenizer_json(path),
            tokenizers.Tokenizer.from_file(str(path)))


def hf_ids(hf, text):
    return hf.encode(text, add_special_tokens=False).ids


def sample(text, size=3000):
    """Start, middle and end of a text (the whole text with NANOFRAME_FULL_PARITY=1)."""
    if FULL or len(text) <= 3 * size:
        return [text]
    mid = len(text) // 2
    return [text[:size], text[mid:mid + size], text[-size:]]


def test_corpora(family):
    name, _, ours, hf = family
    texts = corpus_texts()
    if not texts:
        pytest.skip("shared data not found")
    for file, text in texts:
        for piece in sample(text):
            assert ours.encode(piece, allowed_special="all") == hf_ids(hf, piece), (name, file)


@pytest.mark.parametrize("text", ADVERSARIAL)
def test_adversarial_unicode(family, text):
    _, _, ours, hf = family
    ids = ours.encode(text, allowed_special="all")
    assert ids == hf_ids(hf, text)
    assert ours.decode(ids) == hf.decode(ids, skip_special_tokens=False)


@settings(max_examples=60, deadline=None)
@given(text=text_strategy)
def test_arbitrary_text(family, text):
    # st.characters() includes lone surrogates, which tokenizers cannot take: nanoframe
    # replaces them as tiktoken does, so compare with tokenizers on the repaired text
    _, _, ours, hf = family
    assert ours.encode(text, allowed_special="all") == hf_ids(hf, fix_surrogates(text))


def test_what_is_read(family):
    name, path, ours, hf = family
    data = json.loads(path.read_text(encoding="utf-8"))
    expected = {"gpt2": "gpt2", "gpt2_string_merges": "gpt2", "llama3": "llama3",
                "qwen2": "qwen2", "smollm2": "smollm2", "gpt4o": "gpt4o", "gpt4": "gpt4"}
    assert ours.pattern == expected[name]
    assert ours.merge_rule == "merges" and ours.ignore_merges == (name == "llama3")
    assert ours.normalizer == ("nfc" if name == "qwen2" else None)
    assert ours.vocab_size == hf.get_vocab_size(with_added_tokens=True)
    for token in data["added_tokens"]:
        assert ours.special_tokens[token["content"]] == token["id"]
    assert len(ours.merges) == len(data["model"]["merges"])
    if name == "smollm2":
        assert ours.special_tokens["<|endoftext|>"] == 0 == ours.eot_id


def test_write_reads_back_identically(family, tmp_path):
    name, _, ours, hf = family
    out = tmp_path / "tokenizer.json"
    ours.save_tokenizer_json(out)
    again = BPETokenizer.from_tokenizer_json(out)
    assert again.mergeable_ranks == ours.mergeable_ranks and again.merges == ours.merges
    assert again.special_tokens == ours.special_tokens and again.pattern == ours.pattern
    assert (again.ignore_merges, again.normalizer) == (ours.ignore_merges, ours.normalizer)
    hf_again = tokenizers.Tokenizer.from_file(str(out))
    for text in ADVERSARIAL + [training_text()[:20_000]]:
        assert hf_ids(hf_again, text) == hf_ids(hf, text)


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4", "gpt4o", "llama3", "qwen2", "smollm2"])
def test_trained_tokenizer_saves_a_file_tokenizers_encodes_identically(pattern, tmp_path):
    texts = corpus_texts()
    held_out = [t for f, t in texts if f.startswith("nltk_inaugural")][:30]
    tok = BPETokenizer().train(training_text(), 1024, pattern=pattern,
                               special_tokens=["<|endoftext|>"], show_progress=False)
    tok.save_tokenizer_json(tmp_path / "tokenizer.json")
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for text in ["<|endoftext|>".join(held_out)] + ADVERSARIAL:
        assert tok.encode(text, allowed_special="all") == hf_ids(hf, text)
    loaded = BPETokenizer.from_tokenizer_json(tmp_path / "tokenizer.json")
    assert loaded.encode(ADVERSARIAL[0]) == tok.encode(ADVERSARIAL[0])


# ---- refusals ---------------------------------------------------------------------------
def _save(tok, path):
    tok.save(str(path))
    return path


def refused(path, *words):
    with pytest.raises(TokenizerError) as err:
        BPETokenizer.from_tokenizer_json(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and len(message) < 500
    for word in words:
        assert word in message, message
    return message


def test_unsupported_kinds_are_refused_in_one_line(tmp_path):
    from tokenizers import (Regex, decoders, models, normalizers, pre_tokenizers)
    wordpiece = tokenizers.Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    refused(_save(wordpiece, tmp_path / "wordpiece.json"), "WordPiece", "not supported")
    unigram = tokenizers.Tokenizer(models.Unigram([("<unk>", 0.0), ("a", -1.0)], 0))
    refused(_save(unigram, tmp_path / "unigram.json"), "Unigram", "not supported")
    # Llama 2 / TinyLlama: SentencePiece BPE with byte fallback, Metaspace or Prepend+Replace
    vocab = {"<unk>": 0, "<0x41>": 1, "▁": 2, "a": 3, "▁a": 4}
    sp = models.BPE(vocab, [("▁", "a")], unk_token="<unk>", byte_fallback=True, fuse_unk=True)
    llama2 = tokenizers.Tokenizer(sp)
    llama2.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                              normalizers.Replace(" ", "▁")])
    llama2.decoder = decoders.ByteFallback()
    refused(_save(llama2, tmp_path / "llama2.json"), "SentencePiece")
    tinyllama = tokenizers.Tokenizer(models.BPE(vocab, [("▁", "a")], unk_token="<unk>"))
    tinyllama.pre_tokenizer = pre_tokenizers.Metaspace()
    refused(_save(tinyllama, tmp_path / "tinyllama.json"), "SentencePiece", "pre_tokenizer")
    bpe = build("gpt4o", tmp_path)
    data = json.loads(bpe.read_text(encoding="utf-8"))
    cases = {
        "regex": ("pre_tokenizer", "pretokenizers", 0, "pattern", "Regex", r"(a+)+$"),
        "prefix": ("pre_tokenizer", "pretokenizers", 1, "add_prefix_space", True),
        "behavior": ("pre_tokenizer", "pretokenizers", 0, "behavior", "Removed"),
        "nfkc": ("normalizer", {"type": "NFKC"}),
        "dropout": ("model", "dropout", 0.1),
        "fallback": ("model", "byte_fallback", True),
        "suffix": ("model", "end_of_word_suffix", "</w>"),
        "lstrip": ("added_tokens", 0, "lstrip", True),
        "decoder": ("decoder", {"type": "Metaspace", "replacement": "▁"}),
        "processor": ("post_processor", {"type": "BertProcessing", "sep": ["a", 1], "cls": ["b", 2]}),
    }
    words = {"regex": "not the regex of a built-in", "prefix": "add_prefix_space",
             "behavior": "Isolated", "nfkc": "normalizer", "dropout": "dropout",
             "fallback": "SentencePiece", "suffix": "end_of_word_suffix", "lstrip": "lstrip",
             "decoder": "decoder", "processor": "post_processor"}
    for name, (*keys, value) in cases.items():
        mutated = json.loads(json.dumps(data))
        target = mutated
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(mutated), encoding="utf-8")
        refused(path, words[name])
    assert Regex  # (imported with the others for the Split cases above)


def test_a_pair_listed_twice_keeps_its_last_position(tmp_path):
    """As in `tokenizers`, whose merge map is built by inserting the list in order."""
    from nanoframe.tokenizer.formats import token_to_str
    from nanoframe.tokenizer.hf_json import pre_tokenizer_config
    vocab = {token_to_str(bytes([b])): b for b in range(256)}
    vocab.update({"ab": 256, "bc": 257, "abc": 258})
    byte_level = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                  "use_regex": True}
    for merges in (["a b", "b c", "ab c", "a b"], ["b c", "a b", "b c", "a bc"]):
        data = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
                "normalizer": None, "pre_tokenizer": pre_tokenizer_config("gpt2"),
                "post_processor": None, "decoder": byte_level,
                "model": {"type": "BPE", "dropout": None, "unk_token": None,
                          "continuing_subword_prefix": None, "end_of_word_suffix": None,
                          "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                          "vocab": vocab, "merges": merges}}
        path = tmp_path / "dup.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        hf = tokenizers.Tokenizer.from_file(str(path))
        ours = BPETokenizer.from_tokenizer_json(path)
        for text in ["abc", "abcabc", "xabcbc", "bcab"]:
            assert ours.encode(text) == hf_ids(hf, text)
