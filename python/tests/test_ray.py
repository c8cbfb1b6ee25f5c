"""xenc.ray.Scorer on a local Ray cluster: 10,000 generated pairs through map_batches with 2 actors
give exactly the scores of a direct predict, none lost, none duplicated."""

import numpy as np
import pytest

ray = pytest.importorskip("ray")

N = 10_000


def generated_pairs(n):
    topics = ["rust", "passports", "vitamins", "interest rates", "tides", "chess", "volcanoes"]
    rows = []
    for i in range(n):
        t = topics[i % len(topics)]
        q = f"what about {t} {i % 101}"
        d = f"document {i}: a note on {topics[(i * 7) % len(topics)]}" + " and more" * (i % 9)
        rows.append({"id": i, "query": q, "document": d})
    return rows


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_map_batches_with_two_actors_equals_direct_predict(local_ray, model_dir):
    from xenc import CrossEncoder
    from xenc.ray import Scorer

    rows = generated_pairs(N)
    ds = ray.data.from_items(rows)
    scored = ds.map_batches(
        Scorer,
        fn_constructor_kwargs={"model_dir": model_dir, "device": "cpu", "threads": 1},
        concurrency=2,
        num_cpus=1,
        batch_size=500,
    )
    out = scored.take_all()

    ids = [r["id"] for r in out]
    assert len(ids) == N and sorted(ids) == list(range(N)), "rows lost or duplicated"
    got = np.zeros(N, dtype=np.float32)
    for r in out:
        assert r["query"] == rows[r["id"]]["query"] and r["document"] == rows[r["id"]]["document"]
        got[r["id"]] = r["score"]

    direct = CrossEncoder(model_dir, device="cpu").predict([(r["query"], r["document"]) for r in rows])
    assert np.array_equal(got, direct)


def test_scorer_takes_pandas_batches(model_dir):
    pd = pytest.importorskip("pandas")
    from xenc.ray import Scorer

    s = Scorer(model_dir, device="cpu", threads=1, score_column="s")
    df = pd.DataFrame({"query": ["q1", "q2"], "document": ["d1", "d2"], "id": [5, 6]})
    out = s(df)
    assert list(out.columns) == ["query", "document", "id", "s"]
    assert np.array_equal(out["s"].to_numpy(), s.model.predict([("q1", "d1"), ("q2", "d2")]))
    empty = s({"query": np.array([], dtype=object), "document": np.array([], dtype=object)})
    assert empty["s"].shape == (0,) and empty["s"].dtype == np.float32
