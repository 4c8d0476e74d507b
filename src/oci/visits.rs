//! Bounds on following an index: how deep indexes may nest, how many manifests one read may
//! visit, and each manifest (under one listed platform) visited once, so that an index that
//! lists itself, a cycle, or a small index fanning out to the same children again and again
//! ends with a clear error or is read once, never run until memory is gone.

use std::collections::HashSet;

/// Indexes nested deeper than this are refused (real ones nest one level, Docker's and
/// BuildKit's at most two).
pub const MAX_DEPTH: usize = 4;

/// More manifests than this under one reference are refused (an index lists one per
/// platform and attestation: some tens).
pub const MAX_MANIFESTS: usize = 4096;

/// The manifests one walk has visited.
#[derive(Debug, Default)]
pub struct Visits {
    seen: HashSet<(String, String)>,
}

impl Visits {
    /// Records a visit to manifest `digest`, listed for `platform` (empty for none), at
    /// `depth` (the top is 0). `Ok(false)` when it was visited already: skip it.
    pub fn visit(&mut self, digest: &str, platform: &str, depth: usize) -> Result<bool, String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "indexes nest deeper than {MAX_DEPTH} levels at {digest} (a loop or a hostile index)"
            ));
        }
        if !self.seen.insert((digest.to_string(), platform.to_string())) {
            return Ok(false);
        }
        if self.seen.len() > MAX_MANIFESTS {
            return Err(format!(
                "more than {MAX_MANIFESTS} manifests under one reference (at {digest})"
            ));
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_manifest_once_and_depth_and_count_bounded() {
        let mut v = Visits::default();
        assert_eq!(v.visit("sha256:a", "", 0), Ok(true));
        assert_eq!(v.visit("sha256:a", "", 1), Ok(false));
        assert_eq!(v.visit("sha256:a", "linux/arm64", 1), Ok(true));
        assert!(v.visit("sha256:b", "", MAX_DEPTH).unwrap());
        let err = v.visit("sha256:c", "", MAX_DEPTH + 1).unwrap_err();
        assert!(
            err.contains("deeper than 4") && err.contains("sha256:c"),
            "{err}"
        );
        let mut many = Visits::default();
        for i in 0..MAX_MANIFESTS {
            assert!(many.visit(&format!("sha256:{i}"), "", 1).unwrap());
        }
        let err = many.visit("sha256:last", "", 1).unwrap_err();
        assert!(err.contains("more than 4096 manifests"), "{err}");
    }
}
