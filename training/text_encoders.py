"""Text encoders behind one interface, chosen by name: ``build_text_encoder(name, dim)``.

An encoder is an ``nn.Module`` with ``dim`` (token width) and a picklable ``tokenizer`` (``texts → int64 ids``,
run in DataLoader workers so text never starves the image loop); ``forward(ids)`` returns ``(tokens (B, T, dim),
mask (B, T))``. A row whose mask is all False has no text; pooling and fusion treat it as missing.

- ``hashed-ngrams`` (offline, no downloaded weights): each word (lower-cased, ё→е) becomes itself and its
  character 3-5-grams with boundary marks (``<кот>``, ``<ко``, ``кот>``...), hashed (CRC32) into ``buckets`` rows of
  a trainable embedding table and averaged into one token per word: fastText-style subwords cope with Russian
  inflection (чёрный / чёрная / чёрного share most n-grams).
- a Hugging Face model id (``intfloat/e5-small-v2``, ``intfloat/multilingual-e5-small``...): its last hidden
  states, with the ``query: `` prefix the e5 family expects; needs ``uv sync --extra hf`` and the weights (online,
  or in the local Hugging Face cache).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from petid.text import strip_pii
from training.config import ConfigError

HASHED = "hashed-ngrams"
_WORD = re.compile(r"\w+", re.UNICODE)


class HashedNgramTokenizer:
    """``texts → (B, max_words, max_grams)`` int64 bucket ids (0 = padding); None or empty text → all zeros."""

    def __init__(self, buckets: int = 1 << 16, max_words: int = 48, max_grams: int = 12, n_range: tuple[int, int] = (3, 5)) -> None:
        self.buckets, self.max_words, self.max_grams, self.n_range = buckets, max_words, max_grams, n_range

    def word_ids(self, word: str) -> list[int]:
        marked = f"<{word}>"
        grams = [marked] + [marked[i:i + n] for n in range(self.n_range[0], self.n_range[1] + 1)
                            for i in range(len(marked) - n + 1) if marked[i:i + n] != marked]
        return [zlib.crc32(g.encode()) % (self.buckets - 1) + 1 for g in grams[:self.max_grams]]

    def encode(self, text: str | None) -> np.ndarray:
        out = np.zeros((self.max_words, self.max_grams), dtype=np.int64)
        if not isinstance(text, str):
            return out
        words = _WORD.findall(strip_pii(text).lower().replace("ё", "е"))[:self.max_words]
        for row, word in enumerate(words):
            ids = self.word_ids(word)
            out[row, :len(ids)] = ids
        return out

    def __call__(self, texts: Sequence[str | None]) -> np.ndarray:
        return np.stack([self.encode(t) for t in texts]) if len(texts) else np.zeros((0, self.max_words, self.max_grams), np.int64)


class HashedNgramEncoder(nn.Module):
    """Word tokens = mean of the word's hashed n-gram embeddings (see the module docstring)."""

    def __init__(self, dim: int = 128, buckets: int = 1 << 16, max_words: int = 48) -> None:
        super().__init__()
        self.name, self.dim = HASHED, dim
        self.tokenizer = HashedNgramTokenizer(buckets, max_words)
        self.table = nn.Embedding(buckets, dim, padding_idx=0)
        nn.init.normal_(self.table.weight, std=dim ** -0.5)
        with torch.no_grad():
            self.table.weight[0].zero_()

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        present = (ids != 0).unsqueeze(-1).float()
        tokens = (self.table(ids) * present).sum(2) / present.sum(2).clamp(min=1.0)
        return tokens, ids[..., 0] != 0


class HFTokenizer:
    """A Hugging Face tokenizer loaded on first use (so it pickles into DataLoader workers cheaply)."""

    def __init__(self, name: str, max_length: int = 64, prefix: str = "") -> None:
        self.name, self.max_length, self.prefix = name, max_length, prefix
        self._tokenizer = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_tokenizer": None}

    def __call__(self, texts: Sequence[str | None]) -> np.ndarray:
        if self._tokenizer is None:
            self._tokenizer = _hf("AutoTokenizer", self.name)
        clean = [self.prefix + strip_pii(t) if isinstance(t, str) and t.strip() else "" for t in texts]
        batch = self._tokenizer(clean, padding="max_length", truncation=True, max_length=self.max_length,
                                return_tensors="np")
        ids = batch["input_ids"].astype(np.int64)
        ids[[not c for c in clean]] = 0  # no text: an all-padding row, which the mask reads as missing
        return np.stack([ids, batch["attention_mask"].astype(np.int64) * np.asarray([bool(c) for c in clean])[:, None]], 1)


class HFTextEncoder(nn.Module):
    """A Hugging Face encoder's last hidden states as tokens (ids from ``HFTokenizer``: ``(B, 2, T)`` ids + mask)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.model = _hf("AutoModel", name)
        self.name, self.dim = name, int(self.model.config.hidden_size)
        self.tokenizer = HFTokenizer(name, prefix="query: " if "e5" in name.lower() else "")

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        input_ids, mask = ids[:, 0], ids[:, 1]
        hidden = self.model(input_ids=input_ids, attention_mask=mask.clamp(min=0)).last_hidden_state
        return hidden.float(), mask.bool()


def _hf(kind: str, name: str):
    try:
        import transformers
    except ImportError as exc:
        raise ConfigError(f"text encoder {name!r} needs the Hugging Face extra (uv sync --extra hf); "
                          f"'{HASHED}' works offline") from exc
    try:
        return getattr(transformers, kind).from_pretrained(name)
    except OSError as exc:
        raise ConfigError(f"cannot load Hugging Face model {name!r} (offline, or not in the local cache): "
                          f"{' '.join(str(exc).split())[:160]}") from exc


def build_text_encoder(name: str, dim: int = 128, buckets: int = 1 << 16) -> nn.Module:
    """``hashed-ngrams`` (``dim``-wide, ``buckets`` rows) or a Hugging Face model id (its own width)."""
    if name == HASHED:
        return HashedNgramEncoder(dim, buckets)
    if "/" in name:
        return HFTextEncoder(name)
    raise ConfigError(f"unknown text encoder {name!r}: use '{HASHED}' or a Hugging Face model id such as "
                      "intfloat/e5-small-v2")


def pooled(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over tokens: ``(B, dim)``; rows without text are zeros."""
    weights = mask.unsqueeze(-1).float()
    return (tokens * weights).sum(1) / weights.sum(1).clamp(min=1.0)
