//! A service's template, shared by a layer's clones of it: what a retry (or a hedge) is
//! sent with, cloned only when one is sent, so that a call never retried carries a
//! reference rather than a clone of the service made and dropped per call.
//!
//! The template's allocation can also hold what the calls share besides (the retry
//! layer's state, `T`): a call then takes one reference for both.

use std::sync::{Arc, Mutex, OnceLock};

/// The template, made from the service at its first call (a `Mutex` so that a `Send`
/// service that is not `Sync` keeps the futures holding it `Send`; locked only to clone),
/// beside `T`, which it dereferences to.
pub(crate) struct Template<S, T = ()>(Arc<Held<S, T>>);

struct Held<S, T> {
    with: T,
    service: OnceLock<Mutex<S>>,
}

impl<S, T> Template<S, T> {
    /// No template yet, beside `with`.
    pub(crate) fn with(with: T) -> Self {
        Template(Arc::new(Held {
            with,
            service: OnceLock::new(),
        }))
    }

    /// A reference to the template, made from `service` if there is none yet.
    #[inline]
    pub(crate) fn share(&self, service: &S) -> Self
    where
        S: Clone,
    {
        self.0.service.get_or_init(|| Mutex::new(service.clone()));
        Template(Arc::clone(&self.0))
    }

    /// A clone of the template (made by `share` before any reference to it was handed out).
    pub(crate) fn service(&self) -> S
    where
        S: Clone,
    {
        self.0
            .service
            .get()
            .expect("a template is made before it is shared")
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl<S, T> std::ops::Deref for Template<S, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.0.with
    }
}

impl<S, T> Clone for Template<S, T> {
    fn clone(&self) -> Self {
        Template(Arc::clone(&self.0))
    }
}

impl<S, T: std::fmt::Debug> std::fmt::Debug for Template<S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Template").field(&self.0.with).finish()
    }
}
