//! Opening what `verify` and `inspect` read, a registry reference or `oci:DIR[:REF]`, through
//! [`source_store::open`], with the reference to ask it for.

use crate::registry::RegistryOptions;
use crate::source::Source;
use crate::source_store::{self, OpenedStore};

/// Opens the store `text` names, with the tag or digest to read from it (empty for the only
/// image of a layout). `command` names the command in the error for other sources.
pub fn open(
    text: &str,
    insecure_registries: &[String],
    command: &str,
) -> anyhow::Result<(OpenedStore, String)> {
    let source = Source::parse(text)?;
    let options = RegistryOptions {
        insecure_registries: insecure_registries.to_vec(),
        ..Default::default()
    };
    match source_store::open(&source, &options)? {
        Some(opened) => Ok((opened.store, opened.reference.unwrap_or_default())),
        None => anyhow::bail!(
            "{command} reads a registry reference or oci:DIR[:REF]; {source} is neither (use `archbuild check` for daemon images and archives)"
        ),
    }
}
