#!/usr/bin/env python3
"""Train the XLM-RoBERTa-style test tokenizer (Unigram / SentencePiece) offline.

    python scripts/build_xlmr_tokenizer.py OUTDIR [--vocab-size N]

Needs the `tokenizers` package (the golden venv has it: scripts/golden-venv.sh). Nothing is
downloaded: the training text is the docstrings of Python's own standard library modules, which ship
with every Python. The result is committed (tests/fixtures/xlmr-tokenizer/), so CI never trains; the
training is here so it can be redone and read.

What it writes into OUTDIR, in the shape of xlm-roberta-base / bge-reranker's tokenizer files:
  tokenizer.json           Unigram model trained here; XLM-R's specials <s>=0, <pad>=1, </s>=2,
                           <unk>=3 and <mask> last; the pipeline transformers' XLMRobertaTokenizer
                           builds around it (no normalizer, WhitespaceSplit + Metaspace "▁" with
                           prefix always, the pair template <s> A </s></s> B </s>), saved from
                           transformers itself so that both read the same thing
  tokenizer_config.json    tokenizer_class XLMRobertaTokenizer, model_max_length 512
  special_tokens_map.json
"""

import argparse
import importlib
import json
import os
import pkgutil
import sys

# Standard library modules whose docstrings are the training text: pure Python, present on every
# platform, stable across versions.
MODULES = ["argparse", "ast", "asyncio", "base64", "bisect", "calendar", "collections", "csv",
           "dataclasses", "datetime", "decimal", "difflib", "email", "enum", "fractions", "functools",
           "glob", "gzip", "heapq", "html", "http", "inspect", "ipaddress", "itertools", "json",
           "logging", "mailbox", "operator", "os", "pathlib", "pickle", "pprint", "queue", "random",
           "re", "shutil", "smtplib", "socket", "sqlite3", "statistics", "string", "subprocess",
           "tarfile", "tempfile", "textwrap", "threading", "typing", "unittest", "urllib", "uuid",
           "wave", "xml", "zipfile"]
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def docstrings():
    seen = set()
    for name in MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        objs = [mod] + [getattr(mod, a, None) for a in sorted(dir(mod))]
        for o in objs:
            doc = getattr(o, "__doc__", None)
            if isinstance(doc, str) and doc not in seen:
                seen.add(doc)
                for line in doc.splitlines():
                    line = line.strip()
                    if line:
                        yield line


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--vocab-size", type=int, default=4000)
    args = ap.parse_args()

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    lines = list(docstrings())
    print(f"build_xlmr_tokenizer: {len(lines)} lines of docstrings", file=sys.stderr)
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=args.vocab_size - 1, special_tokens=SPECIALS,
                                      unk_token="<unk>", shrinking_factor=0.75, max_piece_length=16)
    tok.train_from_iterator(lines, trainer=trainer)
    tok.add_special_tokens(["<mask>"])
    ids = {t: tok.token_to_id(t) for t in SPECIALS}
    assert ids == {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}, ids
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0),
                                                      trim_offsets=True, add_prefix_space=True)
    os.makedirs(args.outdir, exist_ok=True)
    tok.save(os.path.join(args.outdir, "tokenizer.json"))
    specials = {"bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "mask_token": "<mask>",
                "pad_token": "<pad>", "sep_token": "</s>", "unk_token": "<unk>"}
    with open(os.path.join(args.outdir, "special_tokens_map.json"), "w", encoding="utf-8") as f:
        json.dump(specials, f, indent=2)
        f.write("\n")
    with open(os.path.join(args.outdir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(dict(specials, tokenizer_class="XLMRobertaTokenizer", model_max_length=512), f, indent=2)
        f.write("\n")
    # transformers' XLMRobertaTokenizer builds its own pipeline around the file's vocabulary (no
    # normalizer, WhitespaceSplit + Metaspace, a TemplateProcessing pair template): save that one, so
    # that transformers and a plain tokenizers.Tokenizer.from_file(tokenizer.json) (what xenc reads)
    # encode alike, as they do for the real checkpoints.
    from transformers import AutoTokenizer
    hf = AutoTokenizer.from_pretrained(os.path.abspath(args.outdir))
    hf.backend_tokenizer.save(os.path.join(args.outdir, "tokenizer.json"))
    again = Tokenizer.from_file(os.path.join(args.outdir, "tokenizer.json"))
    for q, d in [("what is rust", "Rust is a language"), ("     ", "x  y\tz")]:
        assert again.encode(q, d).ids == hf([q], [d])["input_ids"][0], (q, d)
    print(f"build_xlmr_tokenizer: vocab {tok.get_vocab_size()} written to {args.outdir}", file=sys.stderr)


if __name__ == "__main__":
    main()
