//! The roots the HTTPS client trusts.

use crate::InvalidConfig;
use rustls::RootCertStore;

/// The certificate authorities the HTTPS client trusts (urllib3's `ca_certs`), set with
/// [`ClientConfig::tls_roots`](crate::stack::ClientConfig::tls_roots).
///
/// ```
/// use tower_fortify::client::TlsRoots;
/// use tower_fortify::stack::ClientConfig;
///
/// // The default: Mozilla's roots, compiled in (webpki-roots).
/// let client = ClientConfig::default().tls_roots(TlsRoots::WebPki).https()?;
/// # let _: tower_fortify::client::HttpsClient = client;
///
/// // Only a private certificate authority (here an empty store: nothing is trusted).
/// let private = rustls::RootCertStore::empty();
/// let client = ClientConfig::default().tls_roots(TlsRoots::Custom(private)).https()?;
/// # let _: tower_fortify::client::HttpsClient = client;
/// # Ok::<(), tower_fortify::InvalidConfig>(())
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum TlsRoots {
    /// Mozilla's root certificates as shipped by the `webpki-roots` crate (the default):
    /// the same on every machine, updated with the crate.
    #[default]
    WebPki,
    /// The operating system's root certificates, loaded by `rustls-native-certs` when the
    /// client is built (feature `native-roots`). Certificates that fail to parse are
    /// skipped; finding none at all is an [`InvalidConfig`] naming `tls_roots`.
    #[cfg(feature = "native-roots")]
    #[cfg_attr(docsrs, doc(cfg(feature = "native-roots")))]
    Native,
    /// Exactly these roots, for a private certificate authority.
    Custom(RootCertStore),
}

impl TlsRoots {
    pub(crate) fn store(&self) -> Result<RootCertStore, InvalidConfig> {
        match self {
            TlsRoots::WebPki => Ok(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }),
            #[cfg(feature = "native-roots")]
            TlsRoots::Native => {
                let mut store = RootCertStore::empty();
                let found = rustls_native_certs::load_native_certs();
                let (added, _ignored) = store.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(InvalidConfig::new(
                        "tls_roots",
                        "no usable root certificate found in the operating system's store",
                    ));
                }
                Ok(store)
            }
            TlsRoots::Custom(store) => Ok(store.clone()),
        }
    }
}
