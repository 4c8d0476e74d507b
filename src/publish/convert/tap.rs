//! The compression side of one export read for both the check and the publish: as the
//! check's walk of a `docker save` stream reads each layer, its bytes are copied to a
//! compressor (or, for a layer whose size says the cache may hold it, to a spool file decided
//! on once its diffID is known), so that a release exports each image from the daemon once.
//! [`CompressingTap::finish`] records the results in the cache, where [`super::convert`]
//! then finds the whole image without exporting it again.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use super::{cached_sizes, compress, compress_reader, path_diff_id, Converted, Slots};
use crate::image::archive::LayerTap;
use crate::publish::assemble::{Compression, Layer};
use crate::publish::cache::BlobCache;

/// The bytes of a layer copied to its compressor in pieces of this size.
const PIECE: usize = 1 << 20;

/// Pieces in flight between the walk and a compressor: the walk runs at most this far ahead.
const PIECES_IN_FLIGHT: usize = 4;

/// A compression running on its own thread: the compressed layer and the plain size.
type Job = std::thread::JoinHandle<io::Result<(Layer, u64)>>;

/// A layer being copied.
enum Open {
    /// Compressed as it streams, on the thread `job`, fed through `end`.
    Streaming { job: Job, feed: SyncSender<Piece> },
    /// Spooled to a temp file, compressed after the walk only if the cache lacks it.
    Spooling {
        file: tempfile::NamedTempFile,
        size: u64,
    },
}

enum Piece {
    Bytes(Vec<u8>),
    End,
}

/// A [`LayerTap`] that compresses the layers of one image into a [`BlobCache`].
pub struct CompressingTap {
    compression: Compression,
    cache: BlobCache,
    slots: Arc<Slots>,
    /// See [`cached_sizes`]: which sizes may be a cached layer.
    cached_sizes: Option<HashSet<u64>>,
    open: HashMap<String, Open>,
    /// Compressions by diffID.
    jobs: HashMap<String, Job>,
}

impl CompressingTap {
    /// A tap for an image whose layers the daemon lists as `diff_ids` (empty when unknown).
    pub fn new(
        compression: Compression,
        cache: &BlobCache,
        slots: Arc<Slots>,
        diff_ids: &[String],
    ) -> CompressingTap {
        CompressingTap {
            compression,
            cache: cache.clone(),
            slots,
            cached_sizes: cached_sizes(cache, diff_ids, compression),
            open: HashMap::new(),
            jobs: HashMap::new(),
        }
    }

    fn known(&self, diff_id: &str) -> bool {
        self.jobs.contains_key(diff_id) || self.cache.layer(diff_id, self.compression).is_some()
    }

    /// Waits for the compressions, records every layer and the config in the cache, and
    /// returns the image as `convert` would: `config` is its config's bytes and `diff_ids`
    /// its layers, bottom first, as the walk verified them.
    pub fn finish(mut self, config: &[u8], diff_ids: &[String]) -> io::Result<Converted> {
        let mut compressed = HashMap::new();
        for (diff_id, job) in std::mem::take(&mut self.jobs) {
            let (layer, plain_size) = job
                .join()
                .map_err(|_| io::Error::other("a compression thread panicked"))??;
            self.cache.record_layer(&diff_id, &layer, plain_size)?;
            compressed.insert(diff_id, layer);
        }
        let layers = diff_ids
            .iter()
            .map(|d| {
                compressed
                    .get(d)
                    .cloned()
                    .or_else(|| self.cache.layer(d, self.compression))
                    .ok_or_else(|| io::Error::other(format!("layer {d} was not compressed")))
            })
            .collect::<io::Result<Vec<_>>>()?;
        self.cache.put_config(config)?;
        Ok(Converted {
            config: config.to_vec(),
            diff_ids: diff_ids.to_vec(),
            layers,
            compressed: compressed.len(),
            // The export was the check's: this conversion read none of its own.
            exported: false,
        })
    }
}

impl Drop for CompressingTap {
    /// A tap dropped before [`CompressingTap::finish`] (the export broke, the run was
    /// interrupted) ends its compressions before it goes: the streaming ones see their input
    /// end early and stop, removing their temporary files, so that none is left behind when
    /// the process exits right after.
    fn drop(&mut self) {
        let streaming: Vec<Job> = self
            .open
            .drain()
            .filter_map(|(_, open)| match open {
                Open::Streaming { job, feed } => {
                    drop(feed);
                    Some(job)
                }
                Open::Spooling { .. } => None,
            })
            .collect();
        for job in streaming
            .into_iter()
            .chain(self.jobs.drain().map(|(_, job)| job))
        {
            let _ = job.join();
        }
    }
}

impl LayerTap for CompressingTap {
    fn begin(&mut self, path: &str, size: u64) -> io::Result<Option<Box<dyn Write + Send>>> {
        if path_diff_id(path).is_some_and(|d| self.known(&d)) {
            return Ok(None);
        }
        let may_be_cached = self
            .cached_sizes
            .as_ref()
            .is_none_or(|sizes| sizes.contains(&size));
        if may_be_cached {
            let file = tempfile::NamedTempFile::new_in(self.cache.temp_dir())?;
            let writer = io::BufWriter::with_capacity(PIECE, file.as_file().try_clone()?);
            self.open
                .insert(path.to_string(), Open::Spooling { file, size });
            return Ok(Some(Box::new(writer)));
        }
        let (feed, pieces) = sync_channel(PIECES_IN_FLIGHT);
        let (cache, compression) = (self.cache.clone(), self.compression);
        let job = std::thread::spawn(move || {
            let mut reader = Pieces::new(pieces);
            let layer = compress_reader(&mut reader, compression, &cache)?;
            Ok((layer, reader.read))
        });
        let writer = io::BufWriter::with_capacity(PIECE, Feed(feed.clone()));
        self.open
            .insert(path.to_string(), Open::Streaming { job, feed });
        Ok(Some(Box::new(writer)))
    }

    fn end(&mut self, path: &str, digest: &str, mut copy: Box<dyn Write + Send>) -> io::Result<()> {
        copy.flush()?;
        drop(copy);
        let Some(open) = self.open.remove(path) else {
            return Ok(());
        };
        match open {
            Open::Streaming { job, feed } => {
                feed.send(Piece::End).map_err(|_| stopped())?;
                if self.jobs.contains_key(digest) {
                    // The same layer twice in one image: one compression is enough.
                    job.join()
                        .map_err(|_| io::Error::other("a compression thread panicked"))??;
                } else {
                    self.jobs.insert(digest.to_string(), job);
                }
            }
            Open::Spooling { file, size } => {
                if self.known(digest) {
                    return Ok(());
                }
                let (cache, compression) = (self.cache.clone(), self.compression);
                let permit = self.slots.acquire();
                let job = std::thread::spawn(move || {
                    let result = compress(file.path(), compression, &cache);
                    drop(permit);
                    result.map(|layer| (layer, size))
                });
                self.jobs.insert(digest.to_string(), job);
            }
        }
        Ok(())
    }
}

fn stopped() -> io::Error {
    io::Error::other("the layer's compression stopped early")
}

/// The walk's end of a streaming compression.
struct Feed(SyncSender<Piece>);

impl Write for Feed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !buf.is_empty() {
            self.0
                .send(Piece::Bytes(buf.to_vec()))
                .map_err(|_| stopped())?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The compressor's end: the pieces in order, until the walk says the layer ended. A walk
/// that stops before that (a broken export) is an error, never a short layer.
struct Pieces {
    pieces: Receiver<Piece>,
    current: Vec<u8>,
    at: usize,
    ended: bool,
    read: u64,
}

impl Pieces {
    fn new(pieces: Receiver<Piece>) -> Pieces {
        Pieces {
            pieces,
            current: Vec::new(),
            at: 0,
            ended: false,
            read: 0,
        }
    }
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            if self.ended {
                return Ok(0);
            }
            match self.pieces.recv() {
                Ok(Piece::Bytes(bytes)) => (self.current, self.at) = (bytes, 0),
                Ok(Piece::End) => self.ended = true,
                Err(_) => {
                    return Err(io::Error::other(
                        "the export stopped before the layer's end",
                    ))
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        self.read += n as u64;
        Ok(n)
    }
}
