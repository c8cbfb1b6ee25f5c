"""Bad input and bad checkpoints raise the documented exception types with xenc's messages."""

import json
import os
import shutil

import pytest

import xenc


def test_missing_directory(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError) as e:
        xenc.CrossEncoder(missing)
    assert str(e.value) == (
        f"{missing}: not found (a checkpoint directory needs config.json, model.safetensors and tokenizer.json)"
    )


def test_a_file_is_not_a_checkpoint(tmp_path):
    f = tmp_path / "model.bin"
    f.write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        xenc.CrossEncoder(str(f))


def test_missing_weights_are_named(model_dir, tmp_path):
    d = tmp_path / "ckpt"
    d.mkdir()
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(os.path.join(model_dir, name), d / name)
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors: not found"):
        xenc.CrossEncoder(d)


def test_unusable_config_is_a_value_error(model_dir, tmp_path):
    d = tmp_path / "ckpt"
    shutil.copytree(model_dir, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["model_type"] = "distilbert"
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r'^config.json: model_type "distilbert" is not supported'):
        xenc.CrossEncoder(d, device="cpu")


def test_options_out_of_range(model_dir):
    with pytest.raises(ValueError, match=r'^invalid option: unknown device "tpu"'):
        xenc.CrossEncoder(model_dir, device="tpu")
    with pytest.raises(ValueError, match="^invalid option: threads must be at least 1$"):
        xenc.CrossEncoder(model_dir, device="cpu", threads=0)
    with pytest.raises(ValueError, match=r"^invalid option: max_length 1000 exceeds the 512 positions a pair may use \(config.json's max_position_embeddings 512\)$"):
        xenc.CrossEncoder(model_dir, device="cpu", max_length=1000)
    with pytest.raises(ValueError, match="^invalid option: token budget 100 is smaller than max_length 512$"):
        xenc.CrossEncoder(model_dir, device="cpu", token_budget=100)
    with pytest.raises(ValueError, match="must be positive"):
        xenc.CrossEncoder(model_dir, device="cpu", threads=-1)
    with pytest.raises(TypeError, match="threads is str"):
        xenc.CrossEncoder(model_dir, device="cpu", threads="2")
    with pytest.raises(ValueError, match="activation_fn 'tanh'"):
        xenc.CrossEncoder(model_dir, device="cpu", activation_fn="tanh")


def test_cuda_without_a_gpu_is_a_runtime_error(model_dir):
    try:
        m = xenc.CrossEncoder(model_dir, device="cuda")
    except RuntimeError as e:
        assert str(e).startswith("CUDA: ")
    else:  # a machine with a usable GPU
        assert m.device == "cuda:0" and m.dtype == "float16"


def test_empty_input(model):
    with pytest.raises(ValueError, match="^invalid input: no pairs to score$"):
        model.predict([])
    with pytest.raises(ValueError, match="^invalid input: no pairs to score$"):
        model.predict(iter([]))
    with pytest.raises(ValueError, match="^invalid input: no documents to rank$"):
        model.rank("q", [])


def test_non_string_items(model):
    with pytest.raises(TypeError, match=r"^invalid input: pair 1: the document is int, expected str$"):
        model.predict([("q", "d"), ("q", 7)])
    with pytest.raises(TypeError, match=r"^invalid input: pair 2: the query is NoneType, expected str$"):
        model.predict([("q", "d"), ("q", "d"), (None, "d")])
    with pytest.raises(TypeError, match=r"^invalid input: pair 1: is int, expected a \(query, document\) pair$"):
        model.predict([("q", "d"), 5])
    with pytest.raises(TypeError, match=r"^invalid input: pair 1: is a str, expected a \(query, document\) pair$"):
        model.predict([("q", "d"), "qd"])
    with pytest.raises(TypeError, match=r"^invalid input: pairs is str"):
        model.predict("not pairs")
    with pytest.raises(TypeError, match=r"^invalid input: document 1: the document is bytes, expected str$"):
        model.rank("q", ["a", b"b"])
    with pytest.raises(TypeError, match=r"^invalid input: the query is int, expected str$"):
        model.rank(3, ["a"])


def test_wrong_tuple_length(model):
    with pytest.raises(ValueError, match=r"^invalid input: pair 1: has 3 items, expected 2 \(query, document\)$"):
        model.predict([("q", "d"), ("q", "d", "extra")])
    with pytest.raises(ValueError, match=r"^invalid input: pair 0: has 1 items, expected 2 \(query, document\)$"):
        model.predict([("q",), ("q", "d")])


def test_text_that_is_not_unicode(model):
    with pytest.raises(ValueError, match=r"^invalid input: pair 1: the document is not valid Unicode"):
        model.predict([("q", "d"), ("q", "bad \ud800 surrogate")])
