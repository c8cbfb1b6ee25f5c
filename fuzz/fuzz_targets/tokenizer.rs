//! xenc's WordPiece engine against Hugging Face tokenizers (the reference) on the test checkpoint's
//! tokenizer.json (`XENC_FUZZ_TOKENIZER`, default `$HOME/.cache/xenc/test-model/f32/tokenizer.json`,
//! built by scripts/fixtures.sh): identical input_ids and token_type_ids for any UTF-8 query and
//! document, whole pairs and pieces joined, untruncated (max_length 512) and truncated (16).
//! Input: one byte that picks the max_length, then the query, a NUL, the document (invalid UTF-8 is
//! replaced by U+FFFD).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use xenc::tokenize::{Engine, PairTokenizer};

const MAX_LENGTHS: [usize; 2] = [512, 16];

fn engines() -> &'static [(PairTokenizer, PairTokenizer); 2] {
    static ENGINES: OnceLock<[(PairTokenizer, PairTokenizer); 2]> = OnceLock::new();
    ENGINES.get_or_init(|| {
        let path = std::env::var_os("XENC_FUZZ_TOKENIZER")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                let home = std::env::var_os("HOME").expect("HOME or XENC_FUZZ_TOKENIZER");
                std::path::Path::new(&home).join(".cache/xenc/test-model/f32/tokenizer.json")
            });
        MAX_LENGTHS.map(|n| {
            let load = |e| {
                PairTokenizer::from_file_with(&path, n, e)
                    .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
            };
            (load(Engine::Hf), load(Engine::Xenc))
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (q, d) = text.split_once('\0').unwrap_or((&text, ""));
    let (hf, xenc) = &engines()[pick as usize % MAX_LENGTHS.len()];
    let want = hf.encode_pair(q, d);
    let got = xenc.encode_pair(q, d);
    match (&want, &got) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "encode_pair differs on {q:?} / {d:?}"),
        _ => panic!("hf {want:?}, xenc {got:?} on {q:?} / {d:?}"),
    }
    let want = want.unwrap();
    for tok in [hf, xenc] {
        let (pq, pd) = (tok.encode_piece(q).unwrap(), tok.encode_piece(d).unwrap());
        let joined = tok.join(&pq, &pd).unwrap();
        assert_eq!(
            joined,
            want,
            "{}: join differs on {q:?} / {d:?}",
            tok.engine()
        );
    }
});
