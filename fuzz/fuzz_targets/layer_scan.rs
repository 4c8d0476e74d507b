//! `layers::scan` and the merge never panic on any stream, and resolution always ends; the
//! seeking scan (`scan_seekable`, what `docker-archive:FILE` uses) never panics either and,
//! when both succeed, sees the same entries as the streaming one.
#![no_main]

use archbuild::layers::{scan, scan_seekable, Filesystem};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let streamed = scan(data, "fuzz");
    let seeked = scan_seekable(std::io::Cursor::new(data), "fuzz");
    if let (Ok(a), Ok(b)) = (&streamed, &seeked) {
        assert_eq!(a.entries, b.entries);
    }
    if let Ok(summary) = streamed {
        let paths: Vec<String> = summary.entries.iter().map(|e| e.path.clone()).collect();
        let fs = Filesystem::merge(&[summary]);
        for p in paths {
            let _ = fs.resolve(&p, true);
        }
    }
});
