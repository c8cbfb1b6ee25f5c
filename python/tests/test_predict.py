"""predict and rank against sentence-transformers' CrossEncoder (goldens recorded with torch by
scripts/make_rank_goldens.py; these tests need no torch)."""

import types

import numpy as np
import pytest

import xenc
from conftest import short_pairs

TOL = 1e-5


def test_predict_default_activation_matches_sentence_transformers(model, golden, golden_pairs):
    assert golden["default_activation"] == "Sigmoid"
    scores = model.predict(golden_pairs)
    assert isinstance(scores, np.ndarray) and scores.dtype == np.float32 and scores.shape == (209,)
    np.testing.assert_allclose(scores, golden["predict"]["default"], rtol=0, atol=TOL)


def test_predict_raw_matches_sentence_transformers(model, golden, golden_pairs):
    want = np.array(golden["predict"]["raw"])
    np.testing.assert_allclose(model.predict(golden_pairs, activation_fn="identity"), want, rtol=0, atol=TOL)
    for fn in ("raw", "Identity"):
        np.testing.assert_allclose(model.predict(golden_pairs[:30], activation_fn=fn), want[:30], rtol=0, atol=TOL)

    class Identity:  # what torch.nn.Identity() looks like to xenc: matched by class name
        def __call__(self, x):
            raise AssertionError("runs natively, never called")

    np.testing.assert_allclose(model.predict(golden_pairs[:30], activation_fn=Identity()), want[:30], rtol=0, atol=TOL)


def test_activation_given_at_load_is_the_default(model_dir, golden, golden_pairs):
    raw = xenc.CrossEncoder(model_dir, device="cpu", activation_fn="identity")
    assert raw.activation_fn == "identity"
    np.testing.assert_allclose(raw.predict(golden_pairs), golden["predict"]["raw"], rtol=0, atol=TOL)
    # ... and a per-call activation still overrides it.
    np.testing.assert_allclose(
        raw.predict(golden_pairs[:30], activation_fn="sigmoid"), golden["predict"]["default"][:30], rtol=0, atol=TOL
    )


def test_a_python_callable_gets_the_raw_logits(model, golden, golden_pairs):
    got = model.predict(golden_pairs[:20], activation_fn=np.tanh)
    np.testing.assert_allclose(got, np.tanh(golden["predict"]["raw"][:20]), rtol=0, atol=TOL)
    assert got.dtype == np.float32


def test_input_forms(model, golden, golden_pairs):
    want = np.array(golden["predict"]["default"][:10])
    pairs = golden_pairs[:10]
    np.testing.assert_allclose(model.predict(p for p in pairs), want, rtol=0, atol=TOL)  # generator
    np.testing.assert_allclose(model.predict([list(p) for p in pairs]), want, rtol=0, atol=TOL)
    np.testing.assert_allclose(model.predict(tuple(pairs)), want, rtol=0, atol=TOL)
    as_list = model.predict(pairs, convert_to_numpy=False)
    assert isinstance(as_list, list) and all(isinstance(x, float) for x in as_list)
    np.testing.assert_allclose(as_list, want, rtol=0, atol=TOL)
    # One pair, as in sentence-transformers: one score.
    one = model.predict(pairs[3])
    assert isinstance(one, np.float32) and abs(one - want[3]) <= TOL
    assert isinstance(model.predict(list(pairs[3]), convert_to_numpy=False), float)


def test_batch_size_and_softmax_do_not_change_scores(model, golden_pairs):
    pairs = golden_pairs[:30]
    base = model.predict(pairs)
    for bs in (1, 7, 1000):
        assert np.array_equal(model.predict(pairs, batch_size=bs, apply_softmax=True), base)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.predict(golden_pairs, batch_size=0)


def test_chunks_give_the_same_scores_as_one_call(model, golden_pairs):
    # More pairs than one chunk (1,024 on the CPU): every pair scores as it does in a small call.
    many = golden_pairs[:20] + short_pairs(1100) + golden_pairs[20:40]
    got = model.predict(many)
    parts = np.concatenate([model.predict(many[i : i + 300]) for i in range(0, len(many), 300)])
    assert np.array_equal(got, parts)


def test_properties_are_read_only(model, model_dir):
    assert model.device == "cpu"
    assert model.device_name.startswith("cpu (")
    assert model.dtype == "float32"
    assert model.max_length == 512
    assert model.model_dir == model_dir
    assert model.config["hidden_size"] == 384 and model.config["num_labels"] == 1
    assert model.config["layer_norm_eps"] == 1e-12
    assert isinstance(model.config, types.MappingProxyType)
    with pytest.raises(TypeError):
        model.config["hidden_size"] = 1  # type: ignore[index]
    for name in ("device", "max_length", "config"):
        with pytest.raises(AttributeError):
            setattr(model, name, None)
    r = repr(model)
    assert r.startswith("CrossEncoder(model=") and model_dir in r and "cpu (" in r and "float32" in r


def test_max_length_option(model_dir, golden_pairs):
    short = xenc.CrossEncoder(model_dir, device="cpu", max_length=16, threads=1)
    assert short.max_length == 16
    assert short.device_name == "cpu (1 threads)"
    assert short.predict(golden_pairs[:3]).shape == (3,)


def _clusters(result, tol):
    """Runs of neighbouring results whose scores are within tol: their order is not testable."""
    groups, cur = [], [result[0]]
    for prev, r in zip(result, result[1:]):
        if prev["score"] - r["score"] <= tol:
            cur.append(r)
        else:
            groups.append(cur)
            cur = [r]
    groups.append(cur)
    return groups


@pytest.mark.parametrize("case", range(5))
def test_rank_matches_sentence_transformers(model, golden, case):
    c = golden["rank"][case]
    act = {"identity": "identity", None: None}[c["activation"]]
    got = model.rank(c["query"], c["documents"], top_k=c["top_k"], return_documents=c["return_documents"], activation_fn=act)
    want = c["result"]
    assert len(got) == len(want)
    assert [list(r) for r in got] == [list(r) for r in want]  # the same keys, in the same order
    for g, w in zip(got, want):
        assert isinstance(g["corpus_id"], int) and isinstance(g["score"], float)
        assert abs(g["score"] - w["score"]) <= TOL
        if c["return_documents"]:
            assert g["text"] == c["documents"][g["corpus_id"]]
    # Best first; equal scores keep input order.
    assert all(
        a["score"] > b["score"] or (a["score"] == b["score"] and a["corpus_id"] < b["corpus_id"])
        for a, b in zip(got, got[1:])
    )
    # The same ids in the same order, except inside runs of scores closer than the tolerance, where
    # float32 rounding may order them either way (sentence-transformers' own batches do too).
    pos = 0
    for group in _clusters(want, 2 * TOL):
        ids = [r["corpus_id"] for r in group]
        mine = [r["corpus_id"] for r in got[pos : pos + len(ids)]]
        assert (mine == ids) if len(ids) == 1 else (sorted(mine) == sorted(ids)), (pos, mine, ids)
        pos += len(ids)


def test_rank_ties_keep_input_order(model, golden):
    c = golden["rank"][4]  # repeated documents
    got = model.rank(c["query"], c["documents"], activation_fn="identity")
    assert [r["corpus_id"] for r in got] == [r["corpus_id"] for r in c["result"]]


def test_rank_equals_predict(model, golden):
    c = golden["rank"][0]
    scores = model.predict([(c["query"], d) for d in c["documents"]])
    ranked = model.rank(c["query"], c["documents"])
    assert [r["score"] for r in ranked] == sorted(scores.tolist(), reverse=True)
    assert model.rank(c["query"], c["documents"], top_k=0) == []
    assert model.rank(c["query"], iter(c["documents"][:3]), top_k=2) == model.rank(c["query"], c["documents"][:3])[:2]
