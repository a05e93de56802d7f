//! What one host is, for the per-host pools and breakers: the host and port of an
//! authority, read as `http` reads them, and a scheme's default port. The pool's key and the
//! keyed breaker's default key both read an authority this way, so requests that share a
//! pool always share a breaker.

/// The host's place in a valid authority (`[userinfo@]host[:port]`, the host possibly a
/// bracketed IPv6 address), and the explicit port: what `Authority::host` and
/// `Authority::port_u16` return, in one pass over the bytes, from the end (the port's colon
/// is the last one outside brackets; the user information ends at the last `@`).
#[inline]
pub(crate) fn split_host_port(authority: &str) -> (std::ops::Range<usize>, Option<u16>) {
    let bytes = authority.as_bytes();
    let mut start = 0;
    let mut colon = None;
    let mut bracket = false;
    for (i, &b) in bytes.iter().enumerate().rev() {
        match b {
            b'@' => {
                start = i + 1;
                break;
            }
            b']' => bracket = true,
            b':' if colon.is_none() && !bracket => colon = Some(i),
            _ => {}
        }
    }
    match colon {
        Some(colon) => {
            let port = std::str::from_utf8(&bytes[colon + 1..])
                .ok()
                .and_then(|port| port.parse().ok());
            (start..colon, port)
        }
        None => (start..bytes.len(), None),
    }
}

/// A scheme's default port: 80 for `http`, 443 for `https` (in any case).
pub(crate) fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::uri::Authority;

    #[test]
    fn host_and_port_as_http_parses_them() {
        for authority in [
            "example.com",
            "example.com:8080",
            "user:pw@example.com:81",
            "[::1]",
            "[::1]:9000",
            "u@[fe80::1%25eth0]:1",
            "127.0.0.1:65535",
        ] {
            let parsed: Authority = authority.parse().unwrap();
            let (host, port) = split_host_port(authority);
            assert_eq!(&authority[host], parsed.host(), "{authority}");
            assert_eq!(port, parsed.port_u16(), "{authority}");
        }
    }

    #[test]
    fn default_ports() {
        assert_eq!(default_port("HTTP"), Some(80));
        assert_eq!(default_port("https"), Some(443));
        assert_eq!(default_port("ftp"), None);
    }
}
