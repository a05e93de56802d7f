//! The operating system's root certificates (`TlsRoots::Native`), as rustls-native-certs
//! finds them. Where it looks is set for this test alone: the test runs itself again in a
//! child process whose `SSL_CERT_FILE` names a file it wrote (rustls-native-certs then reads
//! that file instead of the system's store), so that neither the machine's store nor the
//! other tests' environment decides the outcome.

use bytes::Bytes;
use http_body_util::Full;
use std::process::Command;
use tower_fortify::{client::TlsRoots, stack::ClientConfig};

/// Set in the child: the case it checks, `store` (`SSL_CERT_FILE` holds one usable root) or
/// `empty` (it holds none).
const CHILD: &str = "FORTIFY_NATIVE_ROOTS_CASE";
const NAME: &str = "native_roots::a_store_with_a_root_builds_and_one_without_is_refused";

#[test]
fn a_store_with_a_root_builds_and_one_without_is_refused() {
    if let Ok(case) = std::env::var(CHILD) {
        let built = ClientConfig::default()
            .tls_roots(TlsRoots::Native)
            .https::<Full<Bytes>>();
        match case.as_str() {
            "store" => {
                built.expect("one usable root in SSL_CERT_FILE");
            }
            "empty" => {
                let err = built.expect_err("no usable root in SSL_CERT_FILE");
                assert!(err.to_string().contains("tls_roots"), "{err}");
            }
            other => panic!("unknown case {other}"),
        }
        return;
    }
    // Removed when dropped, whether the test passes or not.
    let dir = fortify_test_support::pki::scratch_dir("fortify-native-roots-");
    let store = dir.path().join("store.pem");
    let root = rcgen::generate_simple_self_signed(vec!["root.test".to_owned()]).expect("rcgen");
    std::fs::write(&store, root.cert.pem()).expect("write the store");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").expect("write the empty store");
    for (case, file) in [("store", &store), ("empty", &empty)] {
        let output = Command::new(std::env::current_exe().expect("the test binary"))
            .args(["--exact", NAME, "--test-threads=1"])
            .env(CHILD, case)
            .env("SSL_CERT_FILE", file)
            .env_remove("SSL_CERT_DIR")
            .output()
            .expect("run the test binary");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "case {case}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
