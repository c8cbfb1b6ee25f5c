"""Shared fixtures: the f32 test checkpoint (built by `bash scripts/fixtures.sh`) and its goldens."""

import json
import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"


def checkpoint_dir() -> pathlib.Path:
    root = os.environ.get("XENC_TEST_MODEL_DIR")
    root = pathlib.Path(root) if root else pathlib.Path.home() / ".cache" / "xenc" / "test-model"
    return root / "f32"


@pytest.fixture(scope="session")
def model_dir() -> str:
    d = checkpoint_dir()
    if not (d / "model.safetensors").is_file():
        pytest.fail(f"the f32 test checkpoint is not at {d}: run `bash scripts/fixtures.sh` first")
    return str(d)


@pytest.fixture(scope="session")
def model(model_dir):
    import xenc

    return xenc.CrossEncoder(model_dir, device="cpu")


@pytest.fixture(scope="session")
def golden() -> dict:
    """sentence-transformers' predict and rank outputs (scripts/make_rank_goldens.py)."""
    with open(GOLDEN / "python.json", encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="session")
def golden_pairs() -> list:
    with open(GOLDEN / "pairs.jsonl", encoding="utf-8") as f:
        return [(r["query"], r["document"]) for r in map(json.loads, filter(str.strip, f))]


def short_pairs(n: int) -> list:
    """n generated pairs of 8-20 tokens: cheap where many pairs are needed but not their content."""
    topics = ["rust", "passports", "vitamins", "interest rates", "tides", "chess", "volcanoes"]
    return [
        (f"what about {topics[i % 7]} {i % 101}", f"document {i}: a note on {topics[(i * 3) % 7]}" + " and more" * (i % 4))
        for i in range(n)
    ]
