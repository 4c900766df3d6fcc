"""MST-CLIPIQA's tokenizer: transformers files built from open_clip's vocabulary give open_clip's ids."""

from __future__ import annotations

import json
import random
import warnings

import open_clip
import pytest
import torch

from semantic_iqa.backbones import load_clip_tokenizer
from semantic_iqa.errors import WeightsNotFoundError
from semantic_iqa.metrics.mst_clipiqa.text import (
    build_clip_tokenizer,
    clean_prompt,
    tokenize_prompts,
    write_clip_tokenizer_files,
)

START, END = 49406, 49407

WORDS = [
    "a",
    "photo",
    "of",
    "cat",
    "dog",
    "castle",
    "Sunset",
    "OVER",
    "the",
    "mountains",
    "highly",
    "detailed",
    "8k",
    "octane",
    "render",
    "trending",
    "on",
    "ArtStation",
    "by",
    "Greg",
    "Rutkowski",
    "portrait",
    "woman",
    "cyberpunk",
    "city",
    "neon",
    "lights",
    "rain",
    "oil",
    "painting",
    "watercolor",
    "Café",
    "naïve",
    "résumé",
    "Zürich",
    "façade",
    "señor",
    "Ångström",
    "straße",
    "ΣΊΣΥΦΟΣ",
    "Москва",
    "東京タワー",
    "夜景",
    "한국어",
    "中文",
    "🎨",
    "🖼️",
    "🌅",
    "👩‍🚀",
    "🐱",
    "don't",
    "it's",
    "we'll",
    "I'm",
    "they've",
    "she'd",
    "you're",
    "rock'n'roll",
    "3.14",
    "1920x1080",
    "2023",
    "100%",
    "#1",
    "@user",
    "$5",
    "C++",
    "e-mail",
    "state-of-the-art",
    "ﬁne",
    "ＦＵＬＬ",
    "ｗｉｄｔｈ",
    "mojibake:",
    "cafÃ©",
    "â€œquotedâ€",
    "İstanbul",
    "ǅemal",
    "x²",
    "½",
    "™",
    "©",
]
PUNCTUATION = [",", ".", "!", "?", ";", ":", "...", " - ", " — ", "(", ")", "[", "]", "/", "&", "*", "~"]
QUOTES = ['"{}"', "'{}'", "“{}”", "‘{}’", "«{}»", "„{}“", "`{}`"]
ENTITIES = ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&nbsp;", "&eacute;", "&#x1F600;", "&amp;amp;", "&copy;"]
SPACES = [" ", "  ", "\t", "\n", " \u00a0", "\u3000", " \r\n "]


def _prompt(rng: random.Random, min_words: int, max_words: int) -> str:
    parts: list[str] = []
    for _ in range(rng.randint(min_words, max_words)):
        word = rng.choice(WORDS)
        roll = rng.random()
        if roll < 0.1:
            word = rng.choice(QUOTES).format(word)
        elif roll < 0.15:
            word = word.upper() if rng.random() < 0.5 else word.title()
        elif roll < 0.2:
            word = rng.choice(ENTITIES) + word
        elif roll < 0.25:
            word = str(rng.randint(0, 10 ** rng.randint(1, 7)))
        parts.append(word)
        if rng.random() < 0.2:
            parts.append(rng.choice(PUNCTUATION))
        parts.append(rng.choice(SPACES) if rng.random() < 0.1 else " ")
    text = "".join(parts)
    return rng.choice(["", " ", "  \n"]) + text if rng.random() < 0.1 else text


def generated_prompts() -> list[str]:
    """A few hundred prompts in the style of generation prompts, with every awkward class mixed in."""
    rng = random.Random(20260616)
    prompts = [_prompt(rng, 1, 25) for _ in range(300)]
    prompts += [_prompt(rng, 100, 160) for _ in range(30)]  # over 77 tokens: truncated
    prompts += [
        "",
        "a photo with bad quality",
        "A   Photo\twith\nPERFECT quality",
        '“Curly” ‘quotes’ and "straight" ones',
        "Tom &amp; Jerry &lt;3 &amp;amp; friends",
        "ﬁnal ﬂower ligatures",
        "ＦＵＬＬ－ＷＩＤＴＨ ｔｅｘｔ １２３",
        "ΟΔΥΣΣΕΥΣ and ΣΊΣΥΦΟΣ",  # word-final capital sigma
        "text with <|endoftext|> and <|startoftext|> inside",
        "mojibake: cafÃ© and â€œquotesâ€\u009d",
        "emoji only 🎨🖼️🌅👩‍🚀",
        "1234567890 " * 20,
    ]
    return prompts


@pytest.fixture(scope="module")
def tokenizer():
    return build_clip_tokenizer()


@pytest.fixture(scope="module")
def open_clip_tokenizer():
    return open_clip.tokenizer.SimpleTokenizer()


def _open_clip_ids(open_clip_tokenizer, prompts: list[str]) -> list[list[int]]:
    rows = open_clip_tokenizer(prompts, context_length=77)
    # open_clip pads with 0, which is also the id of "!": cut each row after its end token.
    return [row[: row.tolist().index(END) + 1].tolist() for row in rows]


def test_tokenizer_files_hold_clips_real_vocabulary(tmp_path):
    folder = write_clip_tokenizer_files(tmp_path / "tok")
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    merges = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert len(vocab) == 49408 and merges[0] == "#version: 0.2" and len(merges) == 1 + 48894
    assert vocab["<|startoftext|>"] == START and vocab["<|endoftext|>"] == END
    assert vocab["!"] == 0 and vocab["a</w>"] == 320 and vocab["photo</w>"] == 1125
    tokenizer = load_clip_tokenizer(folder)
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (START, END, END)
    assert tokenizer("a photo")["input_ids"] == [START, 320, 1125, END]


def test_a_folder_without_tokenizer_files_is_refused(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="no CLIP tokenizer"):
        load_clip_tokenizer(tmp_path)


def test_same_ids_as_open_clip_on_hundreds_of_prompts(tokenizer, open_clip_tokenizer):
    prompts = generated_prompts()
    assert len(prompts) > 300
    expected = _open_clip_ids(open_clip_tokenizer, prompts)
    assert sum(len(ids) == 77 for ids in expected) >= 30  # the long ones are really truncated
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        input_ids, mask = tokenize_prompts(tokenizer, prompts)
    ours = [row[: int(m.sum())].tolist() for row, m in zip(input_ids, mask, strict=True)]
    mismatches = [(p, e, o) for p, e, o in zip(prompts, expected, ours, strict=True) if e != o]
    assert not mismatches, f"{len(mismatches)} prompts differ, first: {mismatches[0]}"


def test_transformers_alone_differs_so_the_openai_cleaning_is_needed(tokenizer, open_clip_tokenizer):
    """Why `clean_prompt` exists: transformers' CLIP tokenizer skips ftfy and HTML unescaping."""
    differing = [
        "“curly quotes”",
        "ﬁne ligature",
        "ＦＵＬＬ width",
        "Tom &amp; Jerry",
        "cafÃ©",
        "ΣΊΣΥΦΟΣ",
        "a <|endoftext|> b",
    ]
    expected = _open_clip_ids(open_clip_tokenizer, differing)
    for prompt, ids in zip(differing, expected, strict=True):
        assert tokenizer(prompt)["input_ids"] != ids, prompt
        cleaned = tokenizer(clean_prompt(prompt), split_special_tokens=True)["input_ids"]
        assert cleaned == ids, prompt


def test_long_prompt_is_truncated_to_77_with_one_warning(tokenizer):
    long_prompt = " ".join(["castle"] * 120)
    with pytest.warns(UserWarning, match=r"2 of 3 prompt\(s\) are longer than CLIP's 77 tokens") as caught:
        input_ids, mask = tokenize_prompts(tokenizer, [long_prompt, "a cat", long_prompt + " x"])
    assert len([w for w in caught if issubclass(w.category, UserWarning)]) == 1
    assert input_ids.shape == (3, 77) and mask.dtype == torch.long
    full = tokenizer(long_prompt)["input_ids"]
    assert input_ids[0].tolist() == [*full[:76], END]  # start token, 75 tokens, end token
    assert mask[1].tolist() == [1, 1, 1, 1] + [0] * 73
    assert input_ids[1, 4:].eq(tokenizer.pad_token_id).all()


def test_short_prompts_warn_nothing_and_pad_to_the_longest(tokenizer):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        input_ids, mask = tokenize_prompts(tokenizer, ["a cat", "a photo with perfect quality"])
    assert input_ids.shape == mask.shape == (2, 7)
    assert mask.sum(dim=1).tolist() == [4, 7]
