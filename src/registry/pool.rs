//! One client per registry host for a run that reads many repositories: each new store for
//! a host already seen shares the first one's connections and authorization (a new client
//! per image costs a connection and a token dance each).

use std::collections::HashMap;

use super::{RegistryOptions, RegistryStore};
use crate::reference::ImageRef;

/// The stores handed out so far, by registry host.
#[derive(Default)]
pub struct StorePool {
    first: HashMap<String, RegistryStore>,
}

impl StorePool {
    /// A store for the repository of `image`, sharing its host's client.
    pub fn store(&mut self, image: &ImageRef, opts: &RegistryOptions) -> RegistryStore {
        let host = image.registry().to_string();
        let store = match self.first.get(&host) {
            Some(first) => first.with_repository(image, opts),
            None => RegistryStore::new(image, opts),
        };
        self.first.entry(host).or_insert_with(|| store.clone());
        store
    }
}
