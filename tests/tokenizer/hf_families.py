"""tokenizer.json files of each supported family, built locally with the `tokenizers` library.

There is no internet, so instead of the published files these are configured the way the
published files of each family are (pre-tokenizer, normalizer, decoder, post-processor, where
the special tokens sit, ignore_merges) and trained on a small corpus, or, for GPT-2, loaded
from the real encoder.json / vocab.bpe in ../shared/data/gpt2.
"""

import json
from pathlib import Path

import pytest

from tests.helpers import SHARED_DATA as DATA

FAMILIES = ["gpt2", "gpt2_string_merges", "llama3", "qwen2", "smollm2", "gpt4o", "gpt4"]
# Text the small vocabularies are trained on: English plus enough other scripts that non-ASCII
# merges exist.
UNICODE_TRAIN = ("naïve café résumé — Ünïcödé, 日本語のテキスト、中文文本。Русский текст. "
                 "Ελληνικά. עברית. العربية. हिन्दी। 🙂👍🏽👨‍👩‍👧 1234567890 ١٢٣٤ ") * 40


def corpus_texts():
    """Every text file of ../shared/data as (name, text); Latin-1 where not UTF-8."""
    out = []
    for path in sorted(DATA.glob("**/*.txt")):
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        out.append((str(path.relative_to(DATA)), text))
    return out


def training_text():
    path = DATA / "tinyshakespeare.txt"
    base = path.read_text(encoding="utf-8")[:300_000] if path.exists() else ""
    return base + UNICODE_TRAIN


def _train(pattern_config, specials_first, specials, ignore_merges=False, normalizer=None,
           vocab_size=1200):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers, trainers
    tok = tokenizers.Tokenizer(models.BPE(ignore_merges=ignore_merges))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pattern_config
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=specials if specials_first else [])
    tok.train_from_iterator([training_text()], trainer)
    if not specials_first:
        tok.add_special_tokens(specials)  # after the vocabulary, as Llama 3 and Qwen2 have them
    return tok


def _split(regex, use_regex=False):
    from tokenizers import Regex, pre_tokenizers
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=use_regex)])


def build(family, folder):
    """Write the tokenizer.json of `family` into `folder`; returns its path."""
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import AddedToken, normalizers, pre_tokenizers, processors
    from nanoframe.tokenizer.pretokenize import HF_SPLIT_PATTERNS
    path = Path(folder) / f"{family}.json"
    if family.startswith("gpt2"):
        gpt2 = DATA / "gpt2"
        if not (gpt2 / "encoder.json").exists():
            pytest.skip("shared GPT-2 files not found")
        tok = tokenizers.Tokenizer(tokenizers.models.BPE.from_file(
            str(gpt2 / "encoder.json"), str(gpt2 / "vocab.bpe")))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        tok.decoder = tokenizers.decoders.ByteLevel()
        tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=True)])
    elif family == "llama3":
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                    "<|eot_id|>"]
        tok = _train(_split(HF_SPLIT_PATTERNS["llama3"]), False, specials, ignore_merges=True)
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
            special_tokens=[("<|begin_of_text|>", bos)])
    elif family == "qwen2":
        tok = _train(_split(HF_SPLIT_PATTERNS["qwen2"]), False,
                     [AddedToken(s, special=True, normalized=False)
                      for s in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]],
                     normalizer=normalizers.NFC())
        tok.add_tokens([AddedToken("<tool_call>", special=False, normalized=False)])
    elif family == "smollm2":
        digits_byte_level = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
        tok = _train(digits_byte_level, True, ["<|endoftext|>", "<|im_start|>", "<|im_end|>",
                                               "<repo_name>", "<file_sep>"])
    elif family in ("gpt4o", "gpt4"):
        tok = _train(_split(HF_SPLIT_PATTERNS[family]), False, ["<|endoftext|>"])
    else:
        raise ValueError(family)
    tok.save(str(path))
    if family == "gpt2_string_merges":  # the older "a b" spelling of the merges
        data = json.loads(path.read_text(encoding="utf-8"))
        data["model"]["merges"] = [" ".join(m) for m in data["model"]["merges"]]
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path
