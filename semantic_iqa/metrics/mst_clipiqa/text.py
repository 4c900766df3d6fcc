"""CLIP's tokenizer for MST-CLIPIQA: real vocabulary, prompt cleaning, truncation to 77 tokens.

Tokenizer files. A real model's tokenizer comes from its Hub repo (`vocab.json`,
`merges.txt`, ...) and loads with transformers' fast CLIP tokenizer. Tiny and offline models
use the SAME vocabulary: OpenAI's byte-pair file that `open_clip_torch` ships in its wheel
(`bpe_simple_vocab_16e6.txt.gz`). `write_clip_tokenizer_files` turns that file into
transformers' `vocab.json` + `merges.txt` (the 256 byte symbols, the same with the
end-of-word marker `</w>`, one token per merge, then `<|startoftext|>` = 49406 and
`<|endoftext|>` = 49407), so a tiny model's folder holds a real, loadable tokenizer.

Cleaning. OpenAI's CLIP tokenizer (and open_clip's, which copies it) cleans every text
before splitting it: `ftfy.fix_text` (repairs mojibake; straightens curly quotes; folds
full-width characters and ligatures; unescapes HTML), `html.unescape` twice, and collapses
whitespace. transformers' fast CLIP tokenizer (the only one in transformers 5) does none of
that: it applies NFC, collapses whitespace and lower-cases (per character: a final capital
sigma gives "σ", not Python's "ς"); and it reads the text "<|endoftext|>" inside a prompt as
the special token. Token ids then differ for prompts with curly quotes, full-width
characters, ligatures, mojibake, HTML entities, a word-final "Σ" or special-token text.
`clean_prompt` applies the OpenAI cleaning (and Python's lower-casing) first, and
`tokenize_prompts` splits special-token text as ordinary text, which makes the two
identical (tests/test_mst_text.py).

Truncation. CLIP's text model has 77 positions. A longer prompt keeps its start token,
its first 75 tokens and the end token (as CLIP's own tokenizer truncates); one warning
says how many prompts of the call were cut.
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import ftfy
import torch
from transformers import PreTrainedTokenizerBase

from ...backbones import CLIP_CONTEXT_LENGTH, load_clip_tokenizer
from ...errors import WeightsFormatError

__all__ = [
    "MAX_PROMPT_TOKENS",
    "build_clip_tokenizer",
    "clean_prompt",
    "clip_vocabulary",
    "load_clip_tokenizer",
    "open_clip_vocabulary_file",
    "tokenize_prompts",
    "write_clip_tokenizer_files",
]

START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
END_OF_WORD = "</w>"
MAX_PROMPT_TOKENS = CLIP_CONTEXT_LENGTH
# OpenAI's BPE file: a header line, then merges; CLIP uses the first 48,894 of them, so that
# 512 byte symbols + 48,894 merges + 2 special tokens = 49,408 ids.
NUM_MERGES = 49152 - 256 - 2
OPEN_CLIP_VOCABULARY = "bpe_simple_vocab_16e6.txt.gz"


def open_clip_vocabulary_file() -> Path:
    """Path of OpenAI's BPE file inside the installed `open_clip_torch` (package not imported)."""
    spec = importlib.util.find_spec("open_clip")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / OPEN_CLIP_VOCABULARY
        if path.is_file():
            return path
    raise WeightsFormatError(
        f"CLIP's vocabulary file {OPEN_CLIP_VOCABULARY} was not found: install open-clip-torch, "
        "which ships it (pip install open-clip-torch)"
    )


def _byte_symbols() -> list[str]:
    """The 256 printable characters that stand for the 256 byte values, in byte order.

    Printable Latin-1 bytes stand for themselves; every other byte (controls, space, ...)
    maps to the next unused code point from 256 on, so no symbol is whitespace.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols: dict[int, int] = {byte: byte for byte in printable}
    extra = 0
    for byte in range(256):
        if byte not in symbols:
            symbols[byte] = 256 + extra
            extra += 1
    # Order: printable bytes first (in value order), then the remapped ones, as CLIP numbers them.
    order = printable + [byte for byte in range(256) if byte not in printable]
    return [chr(symbols[byte]) for byte in order]


def clip_vocabulary(bpe_file: str | os.PathLike | None = None) -> tuple[dict[str, int], list[str]]:
    """(token -> id, merges as "left right" lines) of CLIP's tokenizer, from OpenAI's BPE file."""
    path = Path(bpe_file) if bpe_file is not None else open_clip_vocabulary_file()
    lines = gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")
    merges = lines[1 : NUM_MERGES + 1]  # line 0 is a header
    if len(merges) != NUM_MERGES or any(len(merge.split()) != 2 for merge in merges):
        raise WeightsFormatError(f"{path} is not CLIP's BPE file ({len(merges)} merge lines)")
    symbols = _byte_symbols()
    tokens = symbols + [symbol + END_OF_WORD for symbol in symbols] + ["".join(m.split()) for m in merges]
    tokens += [START_TOKEN, END_TOKEN]
    return {token: index for index, token in enumerate(tokens)}, merges


def write_clip_tokenizer_files(folder: str | os.PathLike, bpe_file: str | os.PathLike | None = None) -> Path:
    """Write a transformers CLIP tokenizer (real vocabulary) into `folder`; return the folder.

    Writes `vocab.json` and `merges.txt` built from OpenAI's BPE file, then lets transformers
    add its own files (`tokenizer.json`, `tokenizer_config.json`, ...) by loading and saving.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = clip_vocabulary(bpe_file)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    tokenizer = load_clip_tokenizer(folder)
    tokenizer.save_pretrained(str(folder))
    return folder


def build_clip_tokenizer() -> PreTrainedTokenizerBase:
    """CLIP's tokenizer built from open_clip's vocabulary file, without touching the Hub."""
    with tempfile.TemporaryDirectory(prefix="clip-tokenizer-") as folder:
        return load_clip_tokenizer(write_clip_tokenizer_files(folder))


def clean_prompt(text: str) -> str:
    """OpenAI CLIP's text cleaning: ftfy, HTML unescaped twice, whitespace collapsed, lower case.

    Lower-casing here, with Python's rules, matters for one case: a word-final capital
    sigma becomes "ς" in Python but "σ" in the tokenizers library's per-character rule.
    """
    text = html.unescape(html.unescape(ftfy.fix_text(text)))
    return " ".join(text.split()).lower()


def tokenize_prompts(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], max_tokens: int = MAX_PROMPT_TOKENS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask of `prompts`, padded to the longest, at most `max_tokens`.

    Args:
        tokenizer: a CLIP tokenizer (`load_clip_tokenizer` / `build_clip_tokenizer`).
        prompts: N strings.
        max_tokens: longest sequence kept, start and end tokens included (CLIP: 77).

    Returns:
        input_ids [N, L] (int64, padded with the tokenizer's pad id) and attention_mask [N, L]
        (1 on real tokens, 0 on padding), L = the longest prompt's length, at most `max_tokens`.
        A longer prompt keeps its first `max_tokens - 1` tokens and the end token; one
        `UserWarning` names how many prompts were truncated.
    """
    texts = [clean_prompt(prompt) for prompt in prompts]
    # Tokenised in full first, so the number of truncated prompts is known; `verbose=False`
    # silences transformers' own "longer than the maximum" message, replaced by ours.
    # `split_special_tokens`: a prompt that contains the text "<|endoftext|>" is tokenised as
    # text (as open_clip does), so a prompt can never end itself early.
    sequences = tokenizer(texts, add_special_tokens=True, split_special_tokens=True, verbose=False)["input_ids"]
    end_id = tokenizer.convert_tokens_to_ids(END_TOKEN)
    truncated = sum(len(ids) > max_tokens for ids in sequences)
    if truncated:
        warnings.warn(
            f"{truncated} of {len(sequences)} prompt(s) are longer than CLIP's {max_tokens} tokens and were "
            f"truncated to their first {max_tokens - 2} tokens",
            UserWarning,
            stacklevel=2,
        )
        sequences = [ids if len(ids) <= max_tokens else [*ids[: max_tokens - 1], end_id] for ids in sequences]
    length = max(len(ids) for ids in sequences)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_id
    input_ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    return input_ids, attention_mask
