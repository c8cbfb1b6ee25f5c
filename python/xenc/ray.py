"""Ray Data helper: score a dataset of (query, document) rows with ``Dataset.map_batches``.

    import ray
    from xenc.ray import Scorer

    ds = ray.data.read_parquet("pairs.parquet")            # columns: id, query, document
    scored = ds.map_batches(
        Scorer,
        fn_constructor_kwargs={"model_dir": "models/ms-marco-MiniLM-L-6-v2", "threads": 4},
        concurrency=8,        # 8 actors, each loading the model once
        num_cpus=4,           # cores Ray reserves per actor: match `threads`
        batch_size=1024,
    )
    scored.write_parquet("scored/")                         # columns: id, query, document, score

Each actor loads the model once (in ``__init__``) and scores every batch it is given; Ray runs the
actors on as many machines as the cluster has. Rows keep all their columns; the score is added as a
float32 column. Ray may reorder rows between batches: carry an id column to join results back.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Union

import numpy as np

from . import ActivationLike, CrossEncoder

__all__ = ["Scorer"]


class Scorer:
    """A callable class for ``Dataset.map_batches(Scorer, concurrency=N, fn_constructor_kwargs=...)``.

    Args:
        model_dir: the checkpoint directory, readable on every node that runs an actor.
        device, max_length, threads, token_budget, activation_fn: as for ``xenc.CrossEncoder``.
            Set ``threads`` to the ``num_cpus`` each actor reserves, so actors on one machine do not
            contend for cores.
        query_column, document_column: the input columns (str).
        score_column: the output column (float32; for a model with several labels, one float32 array of
            ``num_labels`` per row).

    A batch may be a dict of numpy arrays (Ray's default ``batch_format="numpy"``) or a pandas
    DataFrame (``batch_format="pandas"``); the same kind comes back, with ``score_column`` added.
    """

    def __init__(
        self,
        model_dir: Union[str, "os.PathLike[str]"],
        device: str = "auto",
        max_length: Optional[int] = None,
        threads: Optional[int] = None,
        token_budget: Optional[int] = None,
        activation_fn: ActivationLike = None,
        query_column: str = "query",
        document_column: str = "document",
        score_column: str = "score",
    ) -> None:
        self.model = CrossEncoder(
            model_dir,
            device=device,
            max_length=max_length,
            threads=threads,
            token_budget=token_budget,
            activation_fn=activation_fn,
        )
        self.query_column = query_column
        self.document_column = document_column
        self.score_column = score_column

    def _score(self, queries: Any, documents: Any) -> np.ndarray:
        q = queries.tolist() if hasattr(queries, "tolist") else list(queries)
        d = documents.tolist() if hasattr(documents, "tolist") else list(documents)
        if not q:
            labels = self.model.num_labels
            return np.zeros((0, labels) if labels > 1 else 0, dtype=np.float32)
        return self.model.predict(list(zip(q, d)))

    def __call__(self, batch: Any) -> Any:
        if isinstance(batch, dict):
            out: Dict[str, Any] = dict(batch)
            out[self.score_column] = self._score(batch[self.query_column], batch[self.document_column])
            return out
        # pandas.DataFrame (or anything with columns and assign)
        scores = self._score(batch[self.query_column], batch[self.document_column])
        # A DataFrame column is one-dimensional: several labels go in as one array a row.
        return batch.assign(**{self.score_column: list(scores) if scores.ndim > 1 else scores})

    def __repr__(self) -> str:
        return f"Scorer({self.model!r}, {self.query_column!r}, {self.document_column!r} -> {self.score_column!r})"
