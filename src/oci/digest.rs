//! Content digests (`algorithm:hex`): computing them, of bytes or of a stream as it passes
//! (a reader or writer that hashes), and telling whether one can name a file. Pure.

use std::io::{Read, Write};

use sha2::{Digest as _, Sha256, Sha512};

/// `sha256:<hex>` of some bytes.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The digest of `bytes` in the algorithm `expected` names (`sha256` or `sha512`), to compare
/// with it; `None` for an algorithm archbuild does not compute.
pub fn digest_like(expected: &str, bytes: &[u8]) -> Option<String> {
    match expected.split_once(':')?.0 {
        "sha256" => Some(sha256(bytes)),
        "sha512" => Some(format!("sha512:{}", hex::encode(Sha512::digest(bytes)))),
        _ => None,
    }
}

/// Checks that archbuild can verify content named by `digest`: the OCI image spec's registered
/// algorithms `sha256` (64 lowercase hex digits) and `sha512` (128). Anything else is refused,
/// never trusted unverified.
pub fn check_supported(digest: &str) -> Result<(), String> {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return Err(format!("{digest:?} is not a digest (ALGORITHM:HEX)"));
    };
    let want = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => {
            return Err(format!(
                "digest {:?} uses the algorithm {:?}, which archbuild cannot verify; only sha256 and sha512 digests are accepted",
                digest.escape_debug().to_string(),
                algorithm.escape_debug().to_string()
            ))
        }
    };
    if hex.len() == want && hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        Ok(())
    } else {
        Err(format!(
            "digest {:?} is malformed: {algorithm} is {want} lowercase hex digits",
            digest.escape_debug().to_string()
        ))
    }
}

/// The running hash of one algorithm.
enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            Hasher::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        }
    }
}

/// Whether a digest is well formed, `algorithm:hex` with letters and digits only, so that it
/// can name a file (`blobs/<algorithm>/<hex>`) without leaving the folder.
pub fn is_well_formed(digest: &str) -> bool {
    digest.split_once(':').is_some_and(|(a, h)| {
        !a.is_empty()
            && !h.is_empty()
            && a.chars().all(|c| c.is_ascii_alphanumeric())
            && h.chars().all(|c| c.is_ascii_alphanumeric())
    })
}

/// A writer that hashes (SHA-256) and counts what passes through.
pub struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// The inner writer, `sha256:<hex>` and the byte count.
    pub fn finish(self) -> (W, String, u64) {
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        (self.inner, digest, self.written)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes what is read through it (SHA-256, or the algorithm of a digest to
/// compare with).
pub struct HashingReader<R: Read> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`, hashing with SHA-256.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::Sha256(Sha256::new()),
        }
    }

    /// Wraps `inner`, hashing in the algorithm of `expected`; refused (see
    /// [`check_supported`]) when archbuild cannot verify it.
    pub fn like(inner: R, expected: &str) -> Result<Self, String> {
        check_supported(expected)?;
        let hasher = if expected.starts_with("sha512:") {
            Hasher::Sha512(Sha512::new())
        } else {
            Hasher::Sha256(Sha256::new())
        };
        Ok(HashingReader { inner, hasher })
    }

    /// Wraps `inner`, hashing in the algorithm of the `ALGORITHM:` prefix of `digest` (its
    /// hex part is not looked at: the digest may be a name yet to be checked); `None` for an
    /// algorithm archbuild does not compute.
    pub fn in_algorithm_of(inner: R, digest: &str) -> Option<Self> {
        let hasher = match digest.split_once(':')?.0 {
            "sha256" => Hasher::Sha256(Sha256::new()),
            "sha512" => Hasher::Sha512(Sha512::new()),
            _ => return None,
        };
        Some(HashingReader { inner, hasher })
    }

    /// `algorithm:<hex>` of what was read.
    pub fn finish(self) -> String {
        self.hasher.finish()
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_in_the_named_algorithm() {
        let d = sha256(b"abc");
        assert_eq!(
            d,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(digest_like(&d, b"abc").as_deref(), Some(d.as_str()));
        assert!(digest_like("sha512:00", b"abc")
            .unwrap()
            .starts_with("sha512:ddaf35a1"));
        assert_eq!(digest_like("md5:00", b"abc"), None);
        assert!(is_well_formed(&d));
        assert!(!is_well_formed("sha256:../../etc/passwd") && !is_well_formed("sha256:"));

        let mut reader = HashingReader::new(&b"abc"[..]);
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
        assert_eq!(reader.finish(), d);
        let sha512 = digest_like("sha512:00", b"abc").unwrap();
        assert!(check_supported(&sha512).is_ok() && check_supported(&d).is_ok());
        let mut reader = HashingReader::like(&b"abc"[..], &sha512).unwrap();
        std::io::copy(&mut reader, &mut std::io::sink()).unwrap();
        assert_eq!(reader.finish(), sha512);
        for bad in [
            "md5:900150983cd24fb0d6963f7d28e17f72",
            "sha256:ABC",
            "sha256:00",
            "blake3:x",
            "sha256",
        ] {
            assert!(check_supported(bad).is_err(), "{bad}");
            assert!(HashingReader::like(&b""[..], bad).is_err(), "{bad}");
        }
        let mut writer = HashingWriter::new(Vec::new());
        writer.write_all(b"abc").unwrap();
        assert_eq!(writer.finish(), (b"abc".to_vec(), d, 3));
    }
}
