//! What the benches share: where the test checkpoint is (`bash scripts/fixtures.sh` builds it).

use std::path::PathBuf;

/// `$XENC_TEST_MODEL_DIR/<rel>` (default `~/.cache/xenc/test-model/<rel>`) if that file or folder
/// exists.
pub fn test_model_path(rel: &str) -> Option<PathBuf> {
    let root = std::env::var_os("XENC_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/xenc/test-model"))
        })?;
    let path = root.join(rel);
    path.exists().then_some(path)
}
