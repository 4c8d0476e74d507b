//! Test helpers: layer tars built from a list of entries, names written raw.

/// Builds a layer tar from (name, what) pairs; names are written raw, unnormalised.
pub(crate) enum T<'a> {
    File(&'a [u8]),
    Exe(&'a [u8]),
    Dir,
    Link(&'a str),
    Hard(&'a str),
}

pub(crate) fn tar(entries: &[(&str, T<'_>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, what) in entries {
        let mut h = tar::Header::new_ustar();
        let data: &[u8] = match what {
            T::File(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                d
            }
            T::Exe(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o755);
                d
            }
            T::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                &[]
            }
            T::Link(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_link_name(t).unwrap();
                &[]
            }
            T::Hard(t) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_link_name(t).unwrap();
                &[]
            }
        };
        h.set_size(data.len() as u64);
        // Raw names so that traversal names reach the reader as written.
        let raw = name.as_bytes();
        h.as_old_mut().name[..raw.len()].copy_from_slice(raw);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}
