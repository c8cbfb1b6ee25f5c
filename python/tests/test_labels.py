"""A model with several labels (contradiction / entailment / neutral): predict returns every label as
sentence-transformers does (raw by default, apply_softmax), rank refuses unless a label is chosen.
Goldens: tests/golden/labels/ (scripts/make_label_goldens.py, sentence-transformers' own outputs)."""

import json

import numpy as np
import pytest

import xenc
from conftest import GOLDEN, checkpoint_dir

NAME = "l2-h128-3labels"
LABELS = ["contradiction", "entailment", "neutral"]


@pytest.fixture(scope="module")
def three_dir() -> str:
    d = checkpoint_dir().parent / "shapes" / NAME
    if not (d / "model.safetensors").is_file():
        pytest.fail(f"the 3-label checkpoint is not at {d}: run `bash scripts/fixtures.sh` first")
    return str(d)


@pytest.fixture(scope="module")
def gold(golden_pairs):
    with open(GOLDEN / "labels" / f"{NAME}.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    pairs = [golden_pairs[r["index"]] for r in rows]
    return pairs, rows


def test_predict_returns_every_label_as_sentence_transformers(three_dir, gold):
    pairs, rows = gold
    m = xenc.CrossEncoder(three_dir, device="cpu")
    assert m.num_labels == 3
    assert m.config["id2label"] == {0: "contradiction", 1: "entailment", 2: "neutral"}
    assert m.activation_fn == "identity"
    got = m.predict(pairs)
    assert got.shape == (len(pairs), 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, np.array([r["st_default"] for r in rows]), rtol=0, atol=1e-5)
    soft = m.predict(pairs, apply_softmax=True)
    np.testing.assert_allclose(soft, np.array([r["st_softmax"] for r in rows]), rtol=0, atol=1e-5)
    # One pair: one row; a list when asked.
    one = m.predict(pairs[0])
    assert one.shape == (3,)
    assert m.predict(pairs[0], convert_to_numpy=False) == pytest.approx(one.tolist())
    assert isinstance(m.predict(pairs[:2], convert_to_numpy=False)[1], list)


def test_rank_refuses_without_a_label_and_ranks_by_the_chosen_one(three_dir, gold):
    pairs, _ = gold
    query = pairs[0][0]
    docs = [d for _, d in pairs[:12]]
    m = xenc.CrossEncoder(three_dir, device="cpu")
    with pytest.raises(ValueError, match=r"^invalid option: the model has 3 labels \(0 contradiction, "):
        m.rank(query, docs)
    by_name = xenc.CrossEncoder(three_dir, device="cpu", label="entailment")
    by_index = xenc.CrossEncoder(three_dir, device="cpu", label=1)
    want = m.predict([(query, d) for d in docs])[:, 1]
    for mm in (by_name, by_index):
        ranked = mm.rank(query, docs)
        assert [r["corpus_id"] for r in ranked] == sorted(range(len(docs)), key=lambda i: (-want[i], i))
        assert [r["score"] for r in ranked] == pytest.approx(sorted(want.tolist(), reverse=True), abs=0)
    with pytest.raises(ValueError, match=r'label "maybe" is not one of the model\'s labels'):
        xenc.CrossEncoder(three_dir, device="cpu", label="maybe")
    with pytest.raises(TypeError, match="label is float"):
        xenc.CrossEncoder(three_dir, device="cpu", label=1.0)


def test_the_ray_scorer_adds_every_label_a_row(three_dir, gold):
    """xenc.ray.Scorer called directly (Ray itself is tested in test_ray.py): numpy and pandas batches."""
    import pandas as pd

    from xenc.ray import Scorer

    pairs, rows = gold
    s = Scorer(three_dir, device="cpu", threads=1)
    batch = {"query": np.array([q for q, _ in pairs[:5]]), "document": np.array([d for _, d in pairs[:5]])}
    want = np.array([r["st_default"] for r in rows[:5]])
    np.testing.assert_allclose(s(batch)["score"], want, rtol=0, atol=1e-5)
    df = s(pd.DataFrame(batch))
    np.testing.assert_allclose(np.stack(df["score"].to_list()), want, rtol=0, atol=1e-5)
    assert s({"query": np.array([], dtype=str), "document": np.array([], dtype=str)})["score"].shape == (0, 3)
