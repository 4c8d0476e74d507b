//! The bounds of one layer walk: how many entries and expanded bytes a layer may have
//! ([`Limits`], overridable from the environment), how many header bytes one entry may come
//! with ([`MAX_HEADER_BYTES`]), and the reader (`Metered`) that keeps the account and refuses
//! the read that would go past either, so that the walk ends with an error naming the limit
//! instead of allocating or running without end.

use std::cell::Cell;
use std::io::{self, Read, Seek, SeekFrom};
use std::rc::Rc;

use super::scan::LayerError;

/// The most header bytes one entry may come with: its own header and its PAX, GNU long
/// name, long link and sparse extensions together. Go's `archive/tar` (which Docker and
/// containerd extract with) refuses a PAX or long-name record over 1 MiB; this allows three
/// of them and the sparse map.
pub const MAX_HEADER_BYTES: u64 = 4 << 20;

/// How much one layer may make the reader do. The defaults are far above real layers
/// (the largest public images have layers of some hundred thousand files and tens of GiB);
/// [`Limits::from_env`] reads overrides for the exceptional image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Tar entries in one layer.
    pub entries: u64,
    /// Bytes the layer's tar stream may expand to.
    pub tar_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            entries: 4_000_000,
            tar_bytes: 256 << 30,
        }
    }
}

impl Limits {
    /// Overrides the entry limit.
    pub const ENTRIES_VAR: &'static str = "ARCHBUILD_MAX_LAYER_ENTRIES";
    /// Overrides the byte limit.
    pub const BYTES_VAR: &'static str = "ARCHBUILD_MAX_LAYER_BYTES";

    /// The defaults, with `ARCHBUILD_MAX_LAYER_ENTRIES` and `ARCHBUILD_MAX_LAYER_BYTES`
    /// (a positive whole number) applied where set.
    pub fn from_env() -> Result<Limits, LayerError> {
        Limits::from_vars(|var| std::env::var_os(var).map(|v| v.to_string_lossy().into_owned()))
    }

    /// [`Limits::from_env`] with the variables looked up by `get`.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Limits, LayerError> {
        let mut limits = Limits::default();
        for (var, slot) in [
            (Self::ENTRIES_VAR, &mut limits.entries),
            (Self::BYTES_VAR, &mut limits.tar_bytes),
        ] {
            if let Some(text) = get(var) {
                *slot = text
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(LayerError::BadLimit { var, value: text })?;
            }
        }
        Ok(limits)
    }
}

/// Which limit stopped the walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Hit {
    Bytes,
    Header,
}

/// The walk's account of the tar stream: bytes read (or the position reached by seeking),
/// where the current entry's headers began while the tar reader reads them, and which
/// limit, if any, refused a read.
pub(super) struct Meter {
    pub(super) limits: Limits,
    pub(super) read: Cell<u64>,
    headers_from: Cell<Option<u64>>,
    pub(super) hit: Cell<Option<Hit>>,
}

impl Meter {
    pub(super) fn new(limits: Limits) -> Meter {
        Meter {
            limits,
            read: Cell::new(0),
            headers_from: Cell::new(None),
            hit: Cell::new(None),
        }
    }

    pub(super) fn headers_begin(&self) {
        self.headers_from.set(Some(self.read.get()));
    }

    pub(super) fn headers_end(&self) {
        self.headers_from.set(None);
    }

    /// Accounts for `n` more bytes, or says which limit they break.
    fn take(&self, n: usize) -> io::Result<()> {
        let now = self.read.get() + n as u64;
        self.read.set(now);
        let hit = if now > self.limits.tar_bytes {
            Some(Hit::Bytes)
        } else if matches!(self.headers_from.get(), Some(from) if now.saturating_sub(from) > MAX_HEADER_BYTES)
        {
            Some(Hit::Header)
        } else {
            None
        };
        match hit {
            Some(hit) => {
                self.hit.set(Some(hit));
                Err(io::Error::other("layer limit reached"))
            }
            None => Ok(()),
        }
    }
}

/// The tar stream as the walk reads it, through its [`Meter`].
pub(super) struct Metered<R> {
    pub(super) inner: R,
    pub(super) meter: Rc<Meter>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.take(n)?;
        Ok(n)
    }
}

/// Seeking moves the account to the position: skipped bytes were never expanded.
impl<R: Seek> Seek for Metered<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let at = self.inner.seek(pos)?;
        self.meter.read.set(at);
        if self.meter.headers_from.get().is_some() {
            // The tar reader seeks over the previous entry's content before its headers.
            self.meter.headers_from.set(Some(at));
        }
        Ok(at)
    }
}
