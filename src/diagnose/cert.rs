//! The certificate chain: a verifier that records what it saw, and x509 reading.

use super::report::{CertificateInfo, ChainProblem};
use rustls::{
    client::{
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        WebPkiServerVerifier,
    },
    pki_types::{CertificateDer, ServerName, UnixTime},
    CertificateError, DigitallySignedStruct, SignatureScheme,
};
use std::sync::{Arc, Mutex};
use x509_parser::{
    extensions::{GeneralName, ParsedExtension},
    oid_registry::{
        OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
        OID_PKIX_ACCESS_DESCRIPTOR_CA_ISSUERS, OID_SIG_ED25519,
    },
    prelude::{FromDer, X509Certificate},
    public_key::PublicKey,
};

/// What the verifier saw: the chain as sent, and the real verification result.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) error: Option<rustls::Error>,
}

/// Records the chain, verifies it with rustls's [`WebPkiServerVerifier`], records the
/// verdict, and lets the handshake finish either way so that the version, suite and ALPN
/// can be reported. The probe sends nothing over a connection whose chain failed.
#[derive(Debug)]
pub(crate) struct Recorder {
    pub(crate) inner: Arc<WebPkiServerVerifier>,
    pub(crate) seen: Arc<Mutex<Seen>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        seen.error = result.err();
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn date(time: &x509_parser::time::ASN1Time) -> String {
    let t = time.to_datetime();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn key_of(cert: &X509Certificate<'_>) -> String {
    let spki = cert.public_key();
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(PublicKey::EC(ec)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            match curve {
                Some(oid) if oid == OID_EC_P256 => "EC P-256".to_owned(),
                Some(oid) if oid == OID_NIST_EC_P384 => "EC P-384".to_owned(),
                Some(oid) if oid == OID_NIST_EC_P521 => "EC P-521".to_owned(),
                _ => format!("EC {} bits", ec.key_size()),
            }
        }
        _ if spki.algorithm.algorithm == OID_SIG_ED25519 => "Ed25519".to_owned(),
        _ if spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY => "EC".to_owned(),
        _ => format!("{}", spki.algorithm.algorithm),
    }
}

/// Reads one certificate; `now` in UNIX seconds.
pub(crate) fn read(der: &CertificateDer<'_>, now: i64) -> Option<CertificateInfo> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let mut sans = Vec::new();
    let mut ca_issuers = Vec::new();
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(dns) => sans.push((*dns).to_owned()),
                        GeneralName::IPAddress(ip) => match ip.len() {
                            4 => sans.push(
                                std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).ok()?)
                                    .to_string(),
                            ),
                            16 => sans.push(
                                std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).ok()?)
                                    .to_string(),
                            ),
                            _ => {}
                        },
                        _ => {}
                    }
                }
            }
            ParsedExtension::AuthorityInfoAccess(aia) => {
                for desc in &aia.accessdescs {
                    if desc.access_method == OID_PKIX_ACCESS_DESCRIPTOR_CA_ISSUERS {
                        if let GeneralName::URI(uri) = desc.access_location {
                            ca_issuers.push(uri.to_owned());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let validity = cert.validity();
    let days_left = (validity.not_after.timestamp() - now).div_euclid(86_400);
    Some(CertificateInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        sans,
        not_before: date(&validity.not_before),
        not_after: date(&validity.not_after),
        days_left,
        not_before_in_future: validity.not_before.timestamp() > now,
        key: key_of(&cert),
        self_signed: cert.subject().as_raw() == cert.issuer().as_raw(),
        is_ca: cert.is_ca(),
        ca_issuers,
    })
}

/// Why verification failed, from the verifier's real error and the chain as sent.
pub(crate) fn problem(error: &rustls::Error, chain: &[CertificateInfo]) -> ChainProblem {
    let rustls::Error::InvalidCertificate(cert_error) = error else {
        return ChainProblem::Other;
    };
    match cert_error {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            ChainProblem::Expired
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            ChainProblem::NotYetValid
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            ChainProblem::WrongHost
        }
        CertificateError::UnknownIssuer => issuer_problem(chain).unwrap_or(ChainProblem::Other),
        // webpki rejects a self-signed CA certificate served as the end entity with
        // `CaUsedAsEndEntity`.
        CertificateError::Other(_) if chain.first().is_some_and(|c| c.self_signed) => {
            ChainProblem::SelfSigned
        }
        _ => ChainProblem::Other,
    }
}

fn issuer_problem(chain: &[CertificateInfo]) -> Option<ChainProblem> {
    let leaf = chain.first()?;
    if leaf.self_signed {
        return Some(ChainProblem::SelfSigned);
    }
    let last = chain.last()?;
    // The chain stops below a root. If the last certificate says where its issuer lives
    // (authority information access), that issuer is an intermediate the server should
    // have sent; otherwise the CA is simply not one this client trusts (a private CA).
    if !last.self_signed && !last.ca_issuers.is_empty() {
        return Some(ChainProblem::MissingIntermediate);
    }
    Some(ChainProblem::UnknownIssuer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate with a new key for `alg`, naming `names`.
    fn made_with(
        alg: &'static rcgen::SignatureAlgorithm,
        names: Vec<rcgen::SanType>,
    ) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate_for(alg).expect("key");
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = names;
        params.self_signed(&key).expect("certificate").der().clone()
    }

    #[test]
    fn keys_are_named_by_type_and_curve() {
        // RSA and P-521 keys: ring makes neither; `tests/diagnose/openssl.rs` reads them.
        for (alg, name) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, "EC P-256"),
            (&rcgen::PKCS_ECDSA_P384_SHA384, "EC P-384"),
            (&rcgen::PKCS_ED25519, "Ed25519"),
        ] {
            let info = read(&made_with(alg, Vec::new()), 0).expect("a certificate");
            assert_eq!(info.key, name);
        }
    }

    #[test]
    fn a_start_of_validity_after_now_is_in_the_future() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::default();
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        let der = params.self_signed(&key).expect("certificate").der().clone();
        let start = 946_684_800;
        let in_future = |now| read(&der, now).expect("parsed").not_before_in_future;
        assert!(in_future(start - 1));
        assert!(!in_future(start));
        assert!(!in_future(start + 1));
    }

    /// An untrusted chain: one certificate that is not self-signed, which says where its
    /// issuer lives or not; or a self-signed one.
    #[test]
    fn an_unknown_issuer_is_told_from_a_missing_intermediate() {
        let mut leaf =
            read(&made_with(&rcgen::PKCS_ECDSA_P256_SHA256, Vec::new()), 0).expect("parsed");
        assert!(leaf.self_signed);
        assert_eq!(
            issuer_problem(std::slice::from_ref(&leaf)),
            Some(ChainProblem::SelfSigned)
        );
        leaf.self_signed = false;
        assert_eq!(
            issuer_problem(std::slice::from_ref(&leaf)),
            Some(ChainProblem::UnknownIssuer)
        );
        leaf.ca_issuers = vec!["http://ca.example/intermediate.der".to_owned()];
        assert_eq!(
            issuer_problem(std::slice::from_ref(&leaf)),
            Some(ChainProblem::MissingIntermediate)
        );
    }

    #[test]
    fn names_and_addresses_are_read_in_order() {
        let names = vec![
            rcgen::SanType::DnsName("a.example".try_into().expect("name")),
            rcgen::SanType::IpAddress("127.0.0.1".parse().expect("v4")),
            rcgen::SanType::IpAddress("::1".parse().expect("v6")),
        ];
        let info = read(&made_with(&rcgen::PKCS_ECDSA_P256_SHA256, names), 0).expect("parsed");
        assert_eq!(info.sans, ["a.example", "127.0.0.1", "::1"]);
    }
}
