"""xenc: fast cross-encoder reranking (MiniLM/BERT) from Python.

``xenc.CrossEncoder`` has the shape of sentence-transformers' ``CrossEncoder`` where it applies
(``predict``, ``rank``) and the same scores, computed by xenc's Rust engine (CPU fp32, or CUDA fp16)
straight from a Hugging Face checkpoint directory. No torch is needed.

    >>> from xenc import CrossEncoder
    >>> model = CrossEncoder("models/ms-marco-MiniLM-L-6-v2")          # doctest: +SKIP
    >>> model.predict([("what is rust", "A systems language.")])       # doctest: +SKIP
    array([8.61], dtype=float32)
    >>> model.rank("what is rust", ["A fungus.", "A language."], top_k=1)  # doctest: +SKIP
    [{'corpus_id': 1, 'score': 8.61}]

``xenc.ray.Scorer`` scores a Ray Data dataset with ``map_batches``.

Errors: a missing checkpoint directory or file raises ``FileNotFoundError``; an unusable checkpoint,
an option out of range or unusable input raises ``ValueError``; an input item of the wrong Python
type raises ``TypeError``; a failing backend (CUDA) raises ``RuntimeError``. Messages are xenc's:
they name the file, field, tensor or item (``"invalid input: pair 3: ..."``).
"""

from __future__ import annotations

import os
import types
from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence, Union

import numpy as np

from ._xenc import Model as _Model
from ._xenc import __version__

__all__ = ["CrossEncoder", "__version__"]

PairLike = Sequence[str]
ActivationLike = Union[None, str, Callable[..., Any]]

_NATIVE = {"sigmoid": "sigmoid", "identity": "identity", "raw": "identity"}


def _activation(fn: ActivationLike) -> tuple[Optional[str], Optional[Callable[..., Any]]]:
    """(native name, Python callable) for an activation_fn argument.

    ``None`` is the checkpoint's default; ``"sigmoid"``, ``"identity"`` (or ``"raw"``) and objects of a
    class named ``Sigmoid`` or ``Identity`` (such as ``torch.nn.Sigmoid()``) run natively; any other
    callable is applied in Python to the numpy array of raw logits.
    """
    if fn is None:
        return None, None
    if isinstance(fn, str):
        name = _NATIVE.get(fn.lower())
        if name is None:
            raise ValueError(
                f"invalid option: activation_fn {fn!r}: expected 'sigmoid', 'identity' or a callable"
            )
        return name, None
    name = _NATIVE.get(type(fn).__name__.lower())
    if name is not None:
        return name, None
    if callable(fn):
        return "identity", fn
    raise TypeError(f"activation_fn is {type(fn).__name__}, expected a str or a callable")


def _count(name: str, value: Optional[int]) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} is {type(value).__name__}, expected int or None")
    if value < 0:
        raise ValueError(f"invalid option: {name} must be positive, got {value}")
    return value


def _is_singular(inputs: Any) -> bool:
    # sentence-transformers' rule: a list/tuple whose first element is not a list/tuple is one pair.
    return isinstance(inputs, (list, tuple)) and len(inputs) > 0 and not isinstance(inputs[0], (list, tuple))


class _Progress:
    """A tqdm bar fed by the native progress callback (done pairs so far)."""

    def __init__(self, total: int, enabled: Optional[bool]) -> None:
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm  # optional

                self.bar = tqdm(total=total, desc="Scoring", unit="pair")
            except ImportError:
                self.bar = None
        self.done = 0

    def __call__(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class CrossEncoder:
    """A cross-encoder loaded from a Hugging Face checkpoint directory (config.json,
    model.safetensors in f32/f16/bf16, tokenizer.json).

    Args:
        model_dir: the checkpoint directory (a str or ``os.PathLike``). xenc never downloads.
        device: ``"auto"`` (GPU 0 when usable, else the CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        max_length: tokens per pair after truncation; default tokenizer_config.json's
            ``model_max_length`` when the model's positions cover it, else
            ``min(512, max_position_embeddings)`` (what sentence-transformers truncates to).
        threads: CPU threads for tokenisation and the model (default: all cores).
        token_budget: most tokens in one batch (default 16,384 on the CPU, 65,536 on CUDA).
        activation_fn: overrides the checkpoint's default activation (see ``predict``).
        label: for a model with several labels (``num_labels``), the label ``rank`` ranks by: its name
            in config.json's ``id2label`` or its index. Without it such a model's ``rank`` raises
            ``ValueError``, as sentence-transformers' does.

    Raises:
        FileNotFoundError: ``model_dir`` or one of its files is missing.
        ValueError: the checkpoint is unusable or an option is out of range.
        RuntimeError: the GPU asked for (``device="cuda"``) cannot be used.

    The object is immutable and safe to share between threads; ``predict`` and ``rank`` release the
    GIL while xenc tokenises and runs the model.
    """

    def __init__(
        self,
        model_dir: Union[str, "os.PathLike[str]"],
        device: str = "auto",
        max_length: Optional[int] = None,
        threads: Optional[int] = None,
        token_budget: Optional[int] = None,
        activation_fn: ActivationLike = None,
        label: Union[None, str, int] = None,
    ) -> None:
        if not isinstance(device, str):
            raise TypeError(f"device is {type(device).__name__}, expected str")
        if label is not None and (isinstance(label, bool) or not isinstance(label, (str, int))):
            raise TypeError(f"label is {type(label).__name__}, expected str, int or None")
        native, self._activation_fn = _activation(activation_fn)
        self._model = _Model(
            os.fspath(model_dir),
            device,
            _count("max_length", max_length),
            _count("threads", threads),
            _count("token_budget", token_budget),
            native,
            None if label is None else str(label),
        )

    # --- read-only properties -------------------------------------------------------------

    @property
    def device(self) -> str:
        """``"cpu"`` or ``"cuda:N"``: where the model runs."""
        return self._model.device

    @property
    def device_name(self) -> str:
        """What runs the model, e.g. ``"cpu (2 threads)"`` or ``"cuda:0 NVIDIA H100 ... (sm_90)"``."""
        return self._model.device_name

    @property
    def dtype(self) -> str:
        """``"float32"`` on the CPU, ``"float16"`` on a GPU."""
        return self._model.dtype

    @property
    def max_length(self) -> int:
        """Tokens per pair after truncation."""
        return self._model.max_length

    @property
    def token_budget(self) -> int:
        """Most tokens in one batch."""
        return self._model.token_budget

    @property
    def model_dir(self) -> str:
        return self._model.model_dir

    @property
    def num_labels(self) -> int:
        """Scores per pair: the classifier's labels (1 for a reranker). With several, ``predict`` returns
        an array of shape ``(pairs, num_labels)``."""
        return self._model.num_labels

    @property
    def config(self) -> Mapping[str, Any]:
        """config.json as xenc read it (sizes, ``num_labels``, the configured ``activation_fn``), read-only."""
        return types.MappingProxyType(self._model.config)

    @property
    def activation_fn(self) -> Union[str, Callable[..., Any]]:
        """The default activation ``predict`` and ``rank`` apply: ``"sigmoid"``, ``"identity"``, or the
        callable given to the constructor."""
        return self._activation_fn if self._activation_fn is not None else self._model.activation

    def __repr__(self) -> str:
        return (
            f"CrossEncoder(model={self.model_dir!r}, device={self.device_name!r}, dtype={self.dtype!r}, "
            f"max_length={self.max_length})"
        )

    # --- scoring --------------------------------------------------------------------------

    def predict(
        self,
        pairs: Union[Iterable[PairLike], PairLike],
        batch_size: Optional[int] = None,
        activation_fn: ActivationLike = None,
        apply_softmax: bool = False,
        convert_to_numpy: bool = True,
        show_progress_bar: Optional[bool] = None,
    ) -> Union[np.ndarray, List[float], np.float32, float]:
        """Scores (query, document) pairs, in input order.

        Args:
            pairs: a list (or tuple, or any iterable such as a generator) of (query, document) pairs,
                each a tuple or list of two str; or one pair, for which one score is returned.
            batch_size: accepted for sentence-transformers compatibility and ignored: xenc packs
                length-sorted batches under its token budget (``token_budget``); results do not depend
                on it. Must be positive when given.
            activation_fn: ``None`` for the model's default (sentence-transformers' rule: the
                checkpoint's ``sentence_transformers.activation_fn`` or
                ``sbert_ce_default_activation_function``, else sigmoid for one label; ms-marco
                checkpoints give raw logits); ``"identity"``/``"sigmoid"`` or ``torch.nn.Identity()``/
                ``torch.nn.Sigmoid()``; or any other callable, applied to the numpy array of raw logits.
            apply_softmax: for a model with several labels, softmax across each pair's labels, after
                the activation (as sentence-transformers); no effect with one label.
            convert_to_numpy: True: a float32 numpy array, of shape ``(pairs,)`` for one label and
                ``(pairs, num_labels)`` for several; False: a (nested) list of floats.
            show_progress_bar: a tqdm bar (when tqdm is installed); default off.

        Raises:
            ValueError: an empty input, a pair that is not two items, or an item xenc cannot score;
                the message names the pair (``"invalid input: pair 3: ..."``).
            TypeError: a pair or an item of the wrong type (``"invalid input: pair 3: the document
                is int, expected str"``).
            KeyboardInterrupt: Ctrl-C; scoring stops within one chunk of pairs.
        """
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
        singular = _is_singular(pairs)
        if singular:
            pairs = [pairs]  # type: ignore[list-item]
        elif not isinstance(pairs, (list, tuple)):
            if isinstance(pairs, (str, bytes)):
                raise TypeError(f"invalid input: pairs is {type(pairs).__name__}, expected a list of (query, document) pairs")
            pairs = list(pairs)
        native, custom = _activation(activation_fn)
        if native is None:
            native, custom = None, self._activation_fn
            if custom is not None:
                native = "identity"
        progress = _Progress(len(pairs), show_progress_bar)
        try:
            buf = self._model.predict(pairs, native, progress if progress.bar is not None else None)
        finally:
            progress.close()
        scores = np.frombuffer(buf, dtype=np.float32)
        labels = self._model.num_labels
        if labels > 1:
            scores = scores.reshape(-1, labels)
        if custom is not None:
            scores = np.asarray(custom(scores), dtype=np.float32)
        if apply_softmax and labels > 1:
            e = np.exp(scores - scores.max(axis=1, keepdims=True))
            scores = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        if singular:
            return scores[0] if convert_to_numpy else scores[0].tolist()
        return scores if convert_to_numpy else scores.tolist()

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        top_k: Optional[int] = None,
        return_documents: bool = False,
        batch_size: Optional[int] = None,
        show_progress_bar: Optional[bool] = None,
        activation_fn: ActivationLike = None,
    ) -> List[dict]:
        """Scores ``documents`` against ``query`` (tokenised once) and returns them best first, as
        sentence-transformers' ``CrossEncoder.rank`` does: a list of ``{"corpus_id": int, "score":
        float}`` dicts, with ``"text"`` (the document) when ``return_documents``; ties keep input
        order; at most ``top_k`` (None: all).

        A model with several labels ranks by the constructor's ``label``; without one, ``rank``
        raises ``ValueError`` (sentence-transformers' ``rank`` refuses such models).

        Raises:
            ValueError: no documents, a document xenc cannot score
                (``"invalid input: document 3: ..."``), or several labels and no ``label``.
            TypeError: a query or document that is not a str.
        """
        self._model.check_rankable()
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
        if not isinstance(documents, (list, tuple)):
            if isinstance(documents, (str, bytes)):
                raise TypeError(f"invalid input: documents is {type(documents).__name__}, expected a list of str")
            documents = list(documents)
        top_k = _count("top_k", top_k)
        native, custom = _activation(activation_fn)
        if native is None and self._activation_fn is not None:
            native, custom = "identity", self._activation_fn
        if custom is not None:
            # A Python activation may not keep the order: score everything, then sort here.
            scores = self.predict([(query, d) for d in documents], activation_fn=custom)
            if scores.ndim > 1:
                scores = scores[:, self._model.label]
            order = sorted(range(len(documents)), key=lambda i: scores[i], reverse=True)
            ranked = [(i, float(scores[i])) for i in order][:top_k]
        else:
            progress = _Progress(len(documents), show_progress_bar)
            try:
                ranked = self._model.rank(query, documents, top_k, native, progress if progress.bar is not None else None)
            finally:
                progress.close()
        results = []
        for index, score in ranked:
            r: dict = {"corpus_id": index, "score": score}
            if return_documents:
                r["text"] = documents[index]
            results.append(r)
        return results
