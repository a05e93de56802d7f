//! The roots the client trusts, and its rustls configuration.

use crate::{stack::https::TlsRoots, InvalidConfig};
use std::sync::Arc;

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
