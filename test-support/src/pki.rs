//! Certificates made with rcgen, TLS servers on 127.0.0.1 that present them (rustls, and a
//! real `openssl s_server`), for the diagnose tests and the doctor example.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertifiedIssuer, CustomExtension, DnType,
    IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};
use time::OffsetDateTime;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

pub type Ca = CertifiedIssuer<'static, KeyPair>;

/// A CA certificate (self-signed when `parent` is `None`).
pub fn ca(name: &str, parent: Option<&Issuer<'_, KeyPair>>) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("key");
    match parent {
        None => CertifiedIssuer::self_signed(params, key).expect("self-signed CA"),
        Some(parent) => CertifiedIssuer::signed_by(params, key, parent).expect("intermediate"),
    }
}

/// What a server presents: its chain (own certificate first, DER and PEM) and its key.
pub struct Served {
    pub chain: Vec<CertificateDer<'static>>,
    pub chain_pem: Vec<String>,
    pub key: KeyPair,
}

impl Served {
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.serialize_der().into())
    }
}

/// How a leaf certificate is made.
pub struct LeafSpec<'a> {
    pub names: &'a [&'a str],
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// An authority information access `caIssuers` URI, as public CAs set.
    pub ca_issuers: Option<&'a str>,
}

impl<'a> LeafSpec<'a> {
    pub fn valid(names: &'a [&'a str]) -> Self {
        let now = OffsetDateTime::now_utc();
        LeafSpec {
            names,
            not_before: now - Duration::from_secs(86_400),
            not_after: now + Duration::from_secs(90 * 86_400),
            ca_issuers: None,
        }
    }
}

/// The DER of an authority information access extension with one `caIssuers` URI.
fn aia(uri: &str) -> Vec<u8> {
    let mut inner = vec![
        0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x02, 0x86,
    ];
    inner.push(u8::try_from(uri.len()).expect("short URI"));
    inner.extend_from_slice(uri.as_bytes());
    let mut desc = vec![0x30, u8::try_from(inner.len()).expect("short")];
    desc.extend(inner);
    let mut seq = vec![0x30, u8::try_from(desc.len()).expect("short")];
    seq.extend(desc);
    seq
}

/// A leaf certificate signed by `issuer`.
pub fn leaf(spec: &LeafSpec<'_>, issuer: &Issuer<'_, KeyPair>) -> (Certificate, KeyPair) {
    let names: Vec<String> = spec.names.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("params");
    params.distinguished_name.push(
        DnType::CommonName,
        spec.names.first().copied().unwrap_or("leaf"),
    );
    params.not_before = spec.not_before;
    params.not_after = spec.not_after;
    params.use_authority_key_identifier_extension = true;
    if let Some(uri) = spec.ca_issuers {
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 5, 5, 7, 1, 1],
                aia(uri),
            ));
    }
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, issuer).expect("leaf");
    (cert, key)
}

/// The certificate cases the tests and the doctor run. `root` is the CA the client trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Valid,
    Expired,
    NotYetValid,
    WrongHost,
    SelfSigned,
    UnknownCa,
    MissingIntermediate,
}

pub fn served(case: Case, root: &Ca) -> Served {
    let localhost: &[&str] = &["localhost"];
    let signed = |spec: LeafSpec<'_>, issuer: &Issuer<'_, KeyPair>, extra: Option<&Ca>| {
        let (cert, key) = leaf(&spec, issuer);
        let mut chain = vec![cert.der().clone()];
        let mut chain_pem = vec![cert.pem()];
        if let Some(extra) = extra {
            chain.push(extra.der().clone());
            chain_pem.push(extra.pem());
        }
        Served {
            chain,
            chain_pem,
            key,
        }
    };
    match case {
        Case::Valid => signed(LeafSpec::valid(localhost), root, None),
        Case::Expired => signed(
            LeafSpec {
                not_before: rcgen::date_time_ymd(2020, 1, 1),
                not_after: rcgen::date_time_ymd(2021, 1, 1),
                ..LeafSpec::valid(localhost)
            },
            root,
            None,
        ),
        Case::NotYetValid => signed(
            LeafSpec {
                not_before: rcgen::date_time_ymd(2099, 1, 1),
                not_after: rcgen::date_time_ymd(2100, 1, 1),
                ..LeafSpec::valid(localhost)
            },
            root,
            None,
        ),
        Case::WrongHost => signed(LeafSpec::valid(&["other.example"]), root, None),
        Case::SelfSigned => {
            let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
                .expect("self-signed");
            Served {
                chain: vec![certified.cert.der().clone()],
                chain_pem: vec![certified.cert.pem()],
                key: certified.signing_key,
            }
        }
        Case::UnknownCa => {
            let other = ca("Untrusted Test CA", None);
            signed(LeafSpec::valid(localhost), &other, Some(&other))
        }
        Case::MissingIntermediate => {
            let intermediate = ca("Test Intermediate CA", Some(root));
            signed(
                LeafSpec {
                    ca_issuers: Some("http://ca.test/intermediate.der"),
                    ..LeafSpec::valid(localhost)
                },
                &intermediate,
                None,
            )
        }
    }
}

/// A rustls server configuration presenting `served`, offering `http/1.1` through ALPN.
pub fn server_config(served: &Served) -> Arc<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(served.chain.clone(), served.key_der())
    .expect("server certificate");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A rustls server on 127.0.0.1 presenting `served`, answering every request with `response`.
pub async fn tls_server(served: &Served, response: &'static [u8]) -> SocketAddr {
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config(served));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls.write_all(response).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

pub const OK: &[u8] =
    b"HTTP/1.1 200 OK\r\nserver: fortify-test\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";

// ===== openssl s_server =====

/// A running `openssl s_server`, killed when dropped.
pub struct OpensslServer {
    child: Child,
    pub addr: SocketAddr,
    /// Its certificate and key files, removed when it is dropped.
    _dir: tempfile::TempDir,
}

impl Drop for OpensslServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory of its own (its name starting with `prefix`), removed when dropped: for
/// `openssl`'s files, or a test's certificate store.
pub fn scratch_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir")
}

/// Whether the `openssl` command runs here: `Err(reason)` when it does not.
pub fn openssl_available() -> Result<(), String> {
    match Command::new("openssl").arg("version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!("`openssl version` exited with {}", out.status)),
        Err(error) => Err(format!("cannot run `openssl`: {error}")),
    }
}

/// Starts `openssl s_server -www` on 127.0.0.1 (a port it picks) presenting `served`, with
/// `extra` arguments (`-tls1_1`, `-cipher ...`).
pub fn openssl_server(served: &Served, extra: &[&str]) -> OpensslServer {
    openssl_server_pem(&served.chain_pem, &served.key.serialize_pem(), extra)
}

/// A self-signed certificate for `localhost` and its key, both PEM, made by `openssl req`
/// with a new key of `newkey` (the `-newkey` arguments, such as `rsa:2048`): keys ring cannot
/// make.
pub fn openssl_self_signed(newkey: &[&str]) -> (String, String) {
    let dir = scratch_dir("fortify-openssl-");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost", "-newkey"])
        .args(newkey)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl req");
    assert!(status.success(), "openssl req -newkey {newkey:?}: {status}");
    let pem = |path| std::fs::read_to_string(path).expect("read PEM");
    (pem(&cert), pem(&key))
}

/// Starts `openssl s_server -www` as [`openssl_server`] does, presenting `chain_pem` (the
/// leaf first) with the key `key_pem`.
pub fn openssl_server_pem(chain_pem: &[String], key_pem: &str, extra: &[&str]) -> OpensslServer {
    let dir = scratch_dir("fortify-openssl-");
    let cert = dir.path().join("cert.pem");
    let chain = dir.path().join("chain.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &chain_pem[0]).expect("write cert");
    let rest: String = chain_pem[1..].concat();
    std::fs::write(&key, key_pem).expect("write key");
    let mut command = Command::new("openssl");
    command
        .arg("s_server")
        .arg("-accept")
        .arg("127.0.0.1:0")
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .arg("-www");
    if !rest.is_empty() {
        std::fs::write(&chain, rest).expect("write chain");
        command.arg("-cert_chain").arg(&chain);
    }
    let mut child = command
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn openssl s_server");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(addr) = line.strip_prefix("ACCEPT ") {
                    break addr.trim().parse().expect("s_server's address");
                }
            }
            _ => {
                let _ = child.kill();
                panic!("openssl s_server exited before it listened");
            }
        }
    };
    // Keep draining its output so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    OpensslServer {
        child,
        addr,
        _dir: dir,
    }
}
