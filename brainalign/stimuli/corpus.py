"""Text corpora for training language models, and the word vocabulary that tokenizes them.

One tokenization rule serves training text, stories and reading-time words
alike (:func:`tokenize_text`): lower-cased words (letters and digits, with
inner apostrophes and hyphens: ``atlanta's``, ``long-bearded``) and every
other non-space character as its own token (``England,`` → ``england``,
``,``). A reading-time word's surprisal is then the sum over its tokens.

Corpora (:func:`read_corpus`) are plain-text files, folders of them, or
NLTK-style tagged text (``The/at jury/nn ./.``: the Brown corpus, also inside
its ``.zip``), read as one token list per document.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from .._validation import BrainalignError, InputFileError, check_fname, not_utf8_error

__all__ = ["tokenize_text", "read_corpus", "WordVocabulary", "split_documents", "split_document_lists"]

_TOKEN = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*|\S", re.UNICODE)
_TAGGED = re.compile(r"^(\S+)/([^/\s]+)$")


def tokenize_text(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens of ``text`` (see the module docstring)."""
    return _TOKEN.findall(text.lower())


def _untag(text: str, source: str) -> str:
    """Words of NLTK-style tagged text (``word/tag`` pairs separated by spaces)."""
    words = []
    for item in text.split():
        match = _TAGGED.match(item)
        if match is None:
            raise InputFileError(source, f"token {item!r} is not 'word/tag' (tagged format).")
        word = match.group(1)
        words.append('"' if word in ("``", "''") else word)  # Brown's opening and closing double quotes
    return " ".join(words)


def _looks_tagged(text: str) -> bool:
    items = text.split()[:200]
    return bool(items) and sum(bool(_TAGGED.match(i)) for i in items) > 0.9 * len(items)


def _decode(raw: bytes, source: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        if Path(source).is_file():
            raise not_utf8_error(source, "corpus text") from err
        raise InputFileError(source, f"corpus text is not UTF-8 (byte offset {err.start}: {err.reason}).") from err


def read_corpus(path: str | os.PathLike, fmt: str = "auto") -> list[list[str]]:
    """Read a corpus as one token list per document.

    Parameters
    ----------
    path : str or path-like
        A text file (one document), a folder of text files (one document each,
        sorted by name), or a ``.zip`` of them (the Brown corpus).
    fmt : {"auto", "text", "tagged"}
        ``"tagged"``: ``word/tag`` pairs; ``"auto"`` decides per document.

    Returns
    -------
    list of list of str
        Tokens (:func:`tokenize_text`) of each non-empty document.
    """
    if fmt not in ("auto", "text", "tagged"):
        raise BrainalignError(f"corpus format must be 'auto', 'text' or 'tagged', got {fmt!r}.")
    path = check_fname(path, "directory" if Path(path).expanduser().is_dir() else "file", "corpus")
    sources: list[tuple[str, bytes]] = []
    if path.is_dir():
        sources = [(str(p), p.read_bytes()) for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    elif path.suffix == ".zip":
        try:
            with zipfile.ZipFile(path) as archive:
                names = sorted(n for n in archive.namelist() if not n.endswith("/")
                               and not Path(n).name.startswith(".") and Path(n).name.upper() not in ("README", "CATS.TXT", "CONTENTS"))
                sources = [(f"{path}:{n}", archive.read(n)) for n in names]
        except zipfile.BadZipFile as err:
            raise InputFileError(path, f"not a zip archive ({err}).") from err
    else:
        sources = [(str(path), path.read_bytes())]
    documents = []
    for source, raw in sources:
        text = _decode(raw, source)
        tagged = fmt == "tagged" or (fmt == "auto" and _looks_tagged(text))
        tokens = tokenize_text(_untag(text, source) if tagged else text)
        if tokens:
            documents.append(tokens)
    if not documents:
        raise InputFileError(path, "the corpus holds no text.")
    return documents


def split_document_lists(documents: Sequence[Sequence[str]], valid_fraction: float = 0.1
                         ) -> tuple[list[list[str]], list[list[str]]]:
    """Training and held-out documents: every ``round(1/valid_fraction)``-th document is held out.

    Parameters
    ----------
    documents : sequence of token lists
    valid_fraction : float, default=0.1
        Fraction of documents held out (at least one: the last document when
        the rule picks none; a single document is split at
        ``1 - valid_fraction`` of its tokens instead).

    Returns
    -------
    train, valid : list of token lists
    """
    if not 0 < valid_fraction < 1:
        raise BrainalignError(f"valid_fraction must be in (0, 1), got {valid_fraction}.")
    if len(documents) == 1:
        tokens = list(documents[0])
        cut = int(round(len(tokens) * (1 - valid_fraction)))
        return [tokens[:cut]], [tokens[cut:]]
    every = max(2, int(round(1 / valid_fraction)))
    held = [i % every == every - 1 for i in range(len(documents))]
    if not any(held):
        held[-1] = True
    train = [list(d) for d, h in zip(documents, held) if not h]
    valid = [list(d) for d, h in zip(documents, held) if h]
    return train, valid


def split_documents(documents: Sequence[Sequence[str]], valid_fraction: float = 0.1
                    ) -> tuple[list[str], list[str]]:
    """Training and held-out token streams of :func:`split_document_lists` (documents concatenated)."""
    train, valid = split_document_lists(documents, valid_fraction)
    return [t for doc in train for t in doc], [t for doc in valid for t in doc]


class WordVocabulary:
    """A word-level vocabulary with the tokenizer interface the feature extraction uses.

    Parameters
    ----------
    words : sequence of str
        The vocabulary, without the special tokens.

    Attributes
    ----------
    unk_token_id : int
        0: ``<unk>``, for words outside the vocabulary.
    bos_token_id : int
        1: ``<bos>``, read before a story's first token.
    """

    UNK, BOS = "<unk>", "<bos>"

    def __init__(self, words: Sequence[str]):
        self.itos = [self.UNK, self.BOS] + [w for w in words if w not in (self.UNK, self.BOS)]
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise BrainalignError("the vocabulary lists a word twice.")
        self.unk_token_id, self.bos_token_id = 0, 1
        self.eos_token_id = None

    @classmethod
    def build(cls, tokens: Iterable[str], max_size: int | None = None, min_count: int = 1) -> WordVocabulary:
        """The ``max_size`` most frequent tokens with at least ``min_count`` occurrences (ties: alphabetical)."""
        counts = Counter(tokens)
        ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        return cls(ranked if max_size is None else ranked[: max(0, int(max_size) - 2)])

    def __len__(self) -> int:
        return len(self.itos)

    def tokenize(self, text: str) -> list[str]:
        """Tokens of ``text`` (:func:`tokenize_text`)."""
        return tokenize_text(text)

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> list[int]:
        """Ids, ``<unk>`` for words outside the vocabulary."""
        return [self.stoi.get(t, 0) for t in tokens]

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Alias of :meth:`convert_tokens_to_ids`."""
        return self.convert_tokens_to_ids(tokens)

    def to_json(self) -> str:
        """The vocabulary as JSON (``{"words": [...]}``, special tokens included)."""
        return json.dumps({"words": self.itos})

    @classmethod
    def from_json(cls, text: str, source: str = "vocabulary") -> WordVocabulary:
        """Read :meth:`to_json` output."""
        try:
            words = json.loads(text)["words"]
        except (ValueError, KeyError, TypeError) as err:
            raise InputFileError(source, f"field 'words' missing or not JSON ({err}).") from err
        if words[:2] != [cls.UNK, cls.BOS]:
            raise InputFileError(source, f"field 'words' must start with {cls.UNK!r}, {cls.BOS!r}.")
        return cls(words[2:])
