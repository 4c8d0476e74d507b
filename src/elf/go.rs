//! A Go program's build information: the `.go.buildinfo` blob the Go linker writes at the
//! start of the data segment (what `go version -m` prints), with the settings that decide
//! where the program runs (`GOARCH`, `GOAMD64`, `GOARM`, `GOARM64`, `CGO_ENABLED`).
//!
//! Format followed: Go's `debug/buildinfo` (Go 1.18 and later): a 32-byte header starting
//! with `"\xff Go buildinf:"` at a 16-byte aligned offset within the first 64 KiB of the
//! first writable segment, the pointer size and flags bytes, then (flag `0x2`, inline
//! strings) the Go version and the module information as varint-prefixed strings. Older
//! binaries hold pointers instead; they are not read (`None`). Pure and bounded.

/// How much of the data segment is searched, as `debug/buildinfo` does.
pub const WINDOW: u64 = 64 * 1024;

const MAGIC: &[u8] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
const FLAG_INLINE: u8 = 0x2;
/// The module information is framed by 16-byte sentinels.
const SENTINEL_LEN: usize = 16;

/// The settings kept: those that decide which CPUs and systems a program runs on.
const KEPT: &[&str] = &[
    "GOOS",
    "GOARCH",
    "GOAMD64",
    "GOARM",
    "GOARM64",
    "GO386",
    "GOPPC64",
    "GORISCV64",
    "CGO_ENABLED",
];

/// A Go program's version and build settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GoBuild {
    /// The toolchain, e.g. `go1.22.3`.
    pub version: String,
    /// The `build` settings of [`KEPT`], in the order written.
    pub settings: Vec<(String, String)>,
}

impl GoBuild {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The x86-64 level `GOAMD64` asks for (`v1` to `v4`).
    pub fn amd64_level(&self) -> Option<u8> {
        level(self.get("GOAMD64")?.strip_prefix('v')?)
    }

    /// The ARM architecture `GOARM` asks for (5, 6 or 7; `7,softfloat` since Go 1.22).
    pub fn arm_level(&self) -> Option<u8> {
        level(self.get("GOARM")?.split(',').next()?)
    }
}

fn level(text: &str) -> Option<u8> {
    text.parse().ok().filter(|l| (1..=9).contains(l))
}

/// Finds and reads the build information in `window`, the first bytes of the file's first
/// writable segment.
pub fn read(window: &[u8]) -> Option<GoBuild> {
    let at = (0..window.len())
        .step_by(16)
        .find(|&at| window[at..].starts_with(MAGIC))?;
    let blob = &window[at..];
    let flags = *blob.get(15)?;
    if flags & FLAG_INLINE == 0 {
        return None;
    }
    let mut rest = blob.get(HEADER_LEN..)?;
    let version = string(&mut rest)?;
    let mut module = string(&mut rest)?;
    let len = module.len();
    if len > 2 * SENTINEL_LEN && module.as_bytes()[len - SENTINEL_LEN - 1] == b'\n' {
        module = module
            .get(SENTINEL_LEN..len - SENTINEL_LEN)
            .unwrap_or_default()
            .to_string();
    }
    let settings = module
        .lines()
        .filter_map(|line| line.strip_prefix("build\t")?.split_once('='))
        .filter(|(k, _)| KEPT.contains(k))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Some(GoBuild {
        version: String::from_utf8_lossy(version.as_bytes()).into_owned(),
        settings,
    })
}

/// A `uvarint`-length-prefixed string, advancing `rest` past it.
fn string(rest: &mut &[u8]) -> Option<String> {
    let mut len: u64 = 0;
    let mut shift = 0;
    loop {
        let (&b, tail) = rest.split_first()?;
        *rest = tail;
        len |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    let len = usize::try_from(len).ok()?;
    let bytes = rest.get(..len)?;
    *rest = &rest[len..];
    Some(String::from_utf8_lossy(bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A build information blob as the Go linker writes it (inline strings).
    pub(crate) fn blob(version: &str, module: &str) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.push(8);
        b.push(FLAG_INLINE);
        b.resize(HEADER_LEN, 0);
        let framed = format!("{}{module}\n{}", "0".repeat(16), "1".repeat(16));
        for s in [version, framed.as_str()] {
            let mut n = s.len();
            while n >= 0x80 {
                b.push((n as u8) | 0x80);
                n >>= 7;
            }
            b.push(n as u8);
            b.extend_from_slice(s.as_bytes());
        }
        b
    }

    #[test]
    fn reads_the_settings_at_an_aligned_offset() {
        let module = "path\texample.com/hi\nbuild\tCGO_ENABLED=0\nbuild\tGOARCH=amd64\nbuild\tGOAMD64=v3\nbuild\t-ldflags=-s";
        let mut window = vec![0u8; 48];
        window.extend(blob("go1.22.3", module));
        let go = read(&window).unwrap();
        assert_eq!(go.version, "go1.22.3");
        assert_eq!(go.get("GOARCH"), Some("amd64"));
        assert_eq!(go.get("CGO_ENABLED"), Some("0"));
        assert_eq!(go.get("-ldflags"), None);
        assert_eq!(go.amd64_level(), Some(3));
        let arm = read(&blob(
            "go1.22.3",
            "build\tGOARCH=arm\nbuild\tGOARM=7,softfloat",
        ))
        .unwrap();
        assert_eq!(arm.arm_level(), Some(7));
    }

    #[test]
    fn an_unaligned_or_pointer_format_blob_is_not_read() {
        let mut window = vec![0u8; 8];
        window.extend(blob("go1.22.3", "build\tGOAMD64=v3"));
        assert_eq!(read(&window), None);
        let mut old = blob("go1.17", "build\tGOAMD64=v3");
        old[15] = 0;
        assert_eq!(read(&old), None);
        let whole = blob("go1.22.3", "build\tGOAMD64=v3");
        for len in 0..whole.len() {
            let _ = read(&whole[..len]);
        }
    }
}
