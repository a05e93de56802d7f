//! The roots the client trusts, and its rustls configuration.

use crate::InvalidConfig;
use rustls::RootCertStore;
use std::sync::Arc;

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
    fn store(&self) -> Result<RootCertStore, InvalidConfig> {
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

/// The rustls configuration of the client: the `ring` provider, its safe default protocol
/// versions (TLS 1.2 and 1.3), `roots`, no client certificate, and ALPN for HTTP/1.1 (and
/// HTTP/2 first when `http2`).
pub(crate) fn client_config(
    roots: &TlsRoots,
    http2: bool,
) -> Result<Arc<rustls::ClientConfig>, InvalidConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| {
            InvalidConfig::new(
                "tls_roots",
                "the ring provider has no safe protocol version",
            )
        })?
        .with_root_certificates(roots.store()?)
        .with_no_client_auth();
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Arc::new(config))
}
