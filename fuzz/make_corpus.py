#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus (fuzz/corpus/<target>/): a few valid and broken inputs each.

Standard library only. Deterministic: rerunning it rewrites the same files. The loader's inputs are
`config.json` + NUL + `model.safetensors`, or the file alone (see fuzz_targets/loader.rs), for a tiny
BERT (hidden 4, one layer, vocabulary 16) that the fuzz target also uses as its fallback config.
"""
import json
import math
import os
import random
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

TINY = {"model_type": "bert", "hidden_act": "gelu", "hidden_size": 4, "num_attention_heads": 2,
        "num_hidden_layers": 1, "intermediate_size": 8, "max_position_embeddings": 8,
        "type_vocab_size": 2, "vocab_size": 16, "layer_norm_eps": 1e-12, "num_labels": 1}


def specs(prefix="bert."):
    h, i = TINY["hidden_size"], TINY["intermediate_size"]
    out = [(prefix + "embeddings.word_embeddings.weight", [TINY["vocab_size"], h]),
           (prefix + "embeddings.position_embeddings.weight", [TINY["max_position_embeddings"], h]),
           (prefix + "embeddings.token_type_embeddings.weight", [2, h]),
           (prefix + "embeddings.LayerNorm.weight", [h]), (prefix + "embeddings.LayerNorm.bias", [h])]
    p = prefix + "encoder.layer.0."
    for part in ["query", "key", "value"]:
        out += [(f"{p}attention.self.{part}.weight", [h, h]), (f"{p}attention.self.{part}.bias", [h])]
    out += [(p + "attention.output.dense.weight", [h, h]), (p + "attention.output.dense.bias", [h]),
            (p + "attention.output.LayerNorm.weight", [h]), (p + "attention.output.LayerNorm.bias", [h]),
            (p + "intermediate.dense.weight", [i, h]), (p + "intermediate.dense.bias", [i]),
            (p + "output.dense.weight", [h, i]), (p + "output.dense.bias", [h]),
            (p + "output.LayerNorm.weight", [h]), (p + "output.LayerNorm.bias", [h]),
            (prefix + "pooler.dense.weight", [h, h]), (prefix + "pooler.dense.bias", [h]),
            ("classifier.weight", [1, h]), ("classifier.bias", [1])]
    return out


def encode(values, dtype):
    if dtype == "F32":
        return struct.pack(f"<{len(values)}f", *values)
    if dtype == "F16":
        return struct.pack(f"<{len(values)}e", *values)
    # BF16: the top half of the f32 bits (truncated; the seeds need no rounding).
    return b"".join(struct.pack("<I", struct.unpack("<I", struct.pack("<f", v))[0])[2:] for v in values)


def safetensors(tensors, dtype="F32", edit=None):
    """tensors: [(name, shape)] → file bytes with seeded values; edit(header, data) may break it."""
    rng = random.Random(7)
    header, data, width = {}, bytearray(), {"F32": 4, "F16": 2, "BF16": 2}[dtype]
    for name, shape in tensors:
        n = math.prod(shape)
        values = [round(rng.uniform(-0.5, 0.5), 3) for _ in range(n)]
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + n * width]}
        data += encode(values, dtype)
    if edit:
        edit(header, data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + bytes(data)


def loader_input(config, file):
    cfg = b"" if config is None else json.dumps(config, separators=(",", ":")).encode()
    return cfg + b"\0" + file if config is not None else file


def loader_seeds():
    good = safetensors(specs())
    with_cfg = lambda **kw: {**TINY, **kw}

    def overlap(h, _):
        h["bert.embeddings.position_embeddings.weight"]["data_offsets"][0] -= 4
        h["bert.embeddings.position_embeddings.weight"]["data_offsets"][1] -= 4

    def nan(h, data):
        at = h["bert.pooler.dense.weight"]["data_offsets"][0] + 8
        data[at:at + 4] = struct.pack("<f", float("nan"))

    def shape(h, _):
        h["bert.pooler.dense.weight"]["shape"] = [2, 8]

    def bad_dtype(h, _):
        h["classifier.bias"]["dtype"] = "I32"

    return {
        "tiny_f32": loader_input(TINY, good),
        "tiny_f16": loader_input(TINY, safetensors(specs(), "F16")),
        "tiny_bf16": loader_input(TINY, safetensors(specs(), "BF16")),
        "tiny_unprefixed": loader_input(TINY, safetensors(specs(prefix=""))),
        "file_only": good,  # starts with its header length, not `{`: the target's tiny config
        "truncated": loader_input(TINY, good[:-5]),
        "header_length_huge": loader_input(TINY, struct.pack("<Q", 1 << 62) + good[8:]),
        "header_not_json": loader_input(TINY, good[:8] + b"garbage!" + good[16:]),
        "overlap": loader_input(TINY, safetensors(specs(), edit=overlap)),
        "nan": loader_input(TINY, safetensors(specs(), edit=nan)),
        "wrong_shape": loader_input(TINY, safetensors(specs(), edit=shape)),
        "int_dtype": loader_input(TINY, safetensors(specs(), edit=bad_dtype)),
        "trailing_bytes": loader_input(TINY, good + b"\0" * 16),
        "config_huge_hidden": loader_input(with_cfg(hidden_size=65536, num_attention_heads=1), good),
        "config_many_layers": loader_input(with_cfg(num_hidden_layers=1 << 24), good),
        "config_overflow": loader_input(
            with_cfg(hidden_size=1 << 24, intermediate_size=1 << 24, num_hidden_layers=1 << 24,
                     num_attention_heads=1), good),
        "config_roberta": loader_input(with_cfg(model_type="roberta"), good),
    }


JSONL = {
    "pairs": b'{"query":"what is rust","document":"Rust is a systems language."}\n'
             b'{"document":"d","query":"q\\u00e9","extra":[1,{"x":null}]}\r\n',
    "ignored_fields": b'{"id":1e999999,"query":"q","document":"d","deep":[[[[[]]]]],"s":"\\ud800"}\n',
    "bom_and_no_final_newline": b'\xef\xbb\xbf{"query":"a","document":"b"}',
    "bad_utf8": b'{"query":"\xff","document":"d"}\n',
    "not_an_object": b'[1,2]\n"text"\nnull\n',
    "wrong_types": b'{"query":1,"document":"d"}\n{"query":"q","document":{"a":1}}\n{"query":"q"}\n',
    "empty_lines": b'{"query":"q","document":"d"}\n\n  \n',
    "escapes_and_duplicates": b'{"quer\\u0079":"a\\n\\t\\"","document":1,"document":"\\ud83d\\ude00"}\n',
    "not_json": b'{"query":"q","document":"d"} trailing\n{"query":\n',
}

# (max_length selector byte, query, document); the target splits at the first NUL.
TOKENIZER = {
    "plain": (0, "what is rust", "Rust is a systems programming language."),
    "truncated": (1, "a question with several words in it", "a document that runs on and on " * 4),
    "accents": (0, "café naïve Ångström", "cafe\u0301 nai\u0308ve A\u030angstro\u0308m Straße"),
    "cjk_and_kana": (0, "我爱北京天安门", "漢字かな交じり文 ｶﾀｶﾅ 한국어"),
    "punctuation": (1, "[CLS] (a),b.c!d?", "[SEP] e—f…g 'h' \"i\" #$%&"),
    "control_and_space": (0, "a\tb\u00a0c\u200bd\u3000e", "\u0000\u0001x\ufeffy\u2028z"),
    "long_word": (0, "x" * 120, "supercalifragilisticexpialidocious" * 3),
    "emoji_and_marks": (1, "👍🏽 e\u0334\u0301", "\u0301leading x\u20dd ǅ ß ﬁ"),
    "empty": (0, "", ""),
}


def main():
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    for target, seeds in [("loader", loader_seeds()), ("jsonl", JSONL),
                          ("tokenizer", {k: bytes([b]) + (q + "\0" + d).encode()
                                         for k, (b, q, d) in TOKENIZER.items()})]:
        os.makedirs(os.path.join(CORPUS, target))
        for name, data in seeds.items():
            with open(os.path.join(CORPUS, target, name), "wb") as f:
                f.write(data)
        print(f"corpus/{target}: {len(seeds)} seeds, {sum(map(len, seeds.values()))} bytes")


if __name__ == "__main__":
    main()
