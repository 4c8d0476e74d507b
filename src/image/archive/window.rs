//! A window of a file — the bytes of one tar entry — read through a small buffer, that seeks
//! by moving a position rather than by reading. Reading or seeking past the window's end is
//! an error, so a layer whose entries claim more bytes than the layer has is noticed even
//! though its contents are seeked over.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

/// How much is read at a time: enough for runs of small tar entries, little waste when the
/// next thing wanted is far ahead.
const BUFFER: usize = 64 * 1024;

/// The bytes `start..start + len` of a file, as a `Read + Seek` of its own.
pub struct Window {
    file: File,
    start: u64,
    len: u64,
    /// The reading position, relative to `start`.
    pos: u64,
    buf: Box<[u8]>,
    /// Where `buf[..filled]` sits, relative to `start`.
    buf_at: u64,
    filled: usize,
    /// The file's own cursor (absolute), to skip seeks that would not move it.
    cursor: Option<u64>,
}

impl Window {
    /// A window over `len` bytes of `file` from `start`.
    pub fn new(file: File, start: u64, len: u64) -> Window {
        Window {
            file,
            start,
            len,
            pos: 0,
            buf: vec![0; BUFFER].into_boxed_slice(),
            buf_at: 0,
            filled: 0,
            cursor: None,
        }
    }

    /// Reads from the file at `pos` (relative) into `out`, at most up to the window's end.
    fn read_at(&mut self, pos: u64, out: &mut [u8]) -> io::Result<usize> {
        let at = self.start + pos;
        if self.cursor != Some(at) {
            self.file.seek(SeekFrom::Start(at))?;
        }
        let want = out.len().min((self.len - pos) as usize);
        let n = loop {
            match self.file.read(&mut out[..want]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let n = n.inspect_err(|_| self.cursor = None)?;
        self.cursor = Some(at + n as u64);
        if n == 0 && want > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the file ends at byte {at}, inside an entry that should reach byte {}",
                    self.start + self.len
                ),
            ));
        }
        Ok(n)
    }
}

impl Read for Window {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || out.is_empty() {
            return Ok(0);
        }
        let buffered = self.buf_at..self.buf_at + self.filled as u64;
        if !buffered.contains(&self.pos) {
            if out.len() >= self.buf.len() {
                let n = self.read_at(self.pos, out)?;
                self.pos += n as u64;
                return Ok(n);
            }
            let mut buf = std::mem::take(&mut self.buf);
            let n = self.read_at(self.pos, &mut buf);
            self.buf = buf;
            self.filled = n?;
            self.buf_at = self.pos;
        }
        let offset = (self.pos - self.buf_at) as usize;
        let n = out.len().min(self.filled - offset);
        out[..n].copy_from_slice(&self.buf[offset..offset + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Window {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
        };
        match target {
            Some(t) if t <= self.len => {
                self.pos = t;
                Ok(t)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "an entry reaches past the end of its {}-byte archive (seek to {to:?} from {})",
                    self.len, self.pos
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn window(content: &[u8], start: u64, len: u64) -> Window {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(content).unwrap();
        Window::new(f, start, len)
    }

    #[test]
    fn reads_and_seeks_only_inside_the_window() {
        let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut w = window(&content, 1000, 200_000);
        let mut head = [0u8; 10];
        w.read_exact(&mut head).unwrap();
        assert_eq!(head, content[1000..1010]);
        assert_eq!(w.seek(SeekFrom::Current(150_000)).unwrap(), 150_010);
        let mut rest = Vec::new();
        w.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, content[151_010..201_000]);
        w.seek(SeekFrom::Start(5)).unwrap();
        let mut all = Vec::new();
        w.read_to_end(&mut all).unwrap();
        assert_eq!(all, content[1005..201_000]);
        assert!(w.seek(SeekFrom::Current(1)).is_err(), "past the end");
        assert!(
            w.seek(SeekFrom::Current(-300_000)).is_err(),
            "before the start"
        );
    }

    #[test]
    fn a_file_shorter_than_the_window_is_an_error() {
        let mut w = window(&[7; 100], 50, 100);
        let mut out = Vec::new();
        let err = w.read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(out.len(), 50);
    }
}
