//! A service's template, shared by a layer's clones of it: what a retry (or a hedge) is
//! sent with, cloned only when one is sent, so that a call never retried carries a
//! reference rather than a clone of the service made and dropped per call.

use std::sync::{Arc, Mutex, OnceLock};

/// The template, made from the service at its first call (a `Mutex` so that a `Send`
/// service that is not `Sync` keeps the futures holding it `Send`; locked only to clone).
pub(crate) struct Template<S>(Arc<OnceLock<Mutex<S>>>);

impl<S> Template<S> {
    pub(crate) fn new() -> Self {
        Template(Arc::new(OnceLock::new()))
    }

    /// A reference to the template, made from `service` if there is none yet.
    #[inline]
    pub(crate) fn share(&self, service: &S) -> Self
    where
        S: Clone,
    {
        self.0.get_or_init(|| Mutex::new(service.clone()));
        Template(Arc::clone(&self.0))
    }

    /// A clone of the template (made by `share` before any reference to it was handed out).
    pub(crate) fn service(&self) -> S
    where
        S: Clone,
    {
        self.0
            .get()
            .expect("a template is made before it is shared")
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl<S> Clone for Template<S> {
    fn clone(&self) -> Self {
        Template(Arc::clone(&self.0))
    }
}

impl<S> std::fmt::Debug for Template<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Template")
    }
}
