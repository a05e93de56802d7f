//! The connector's connection: TCP, or rustls over TCP, each behind one adapter to hyper's
//! IO traits.

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::{
    client::legacy::connect::{Connected, Connection as HyperConnection},
    rt::TokioIo,
};
use std::{
    fmt, io,
    pin::Pin,
    task::{Context, Poll},
};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A connection the [`Connector`](super::Connector) opened: plain TCP for `http://` URIs,
/// rustls over TCP for `https://` ones. It tells hyper-util whether ALPN chose HTTP/2.
///
/// rustls reads the socket through tokio's traits directly, and hyper reads rustls through
/// one adapter ([`TokioIo`]): each read and write of a kept-alive connection crosses one
/// adapter, not three as through hyper-rustls's stream over hyper-util's TCP stream.
///
/// ```
/// use tower::ServiceExt;
/// use tower_fortify::client::Connection;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_fortify::BoxError> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let uri = format!("http://{}/", listener.local_addr()?).parse()?;
/// let client = tower_fortify::stack::ClientConfig::default().https::<String>()?;
/// let connection: Connection = client.connector().clone().oneshot(uri).await?;
/// assert!(matches!(connection, Connection::Http(_)));
/// # Ok(())
/// # }
/// ```
pub enum Connection {
    /// Plain TCP (`http://`).
    Http(TokioIo<TcpStream>),
    /// rustls over TCP (`https://`).
    Https(TokioIo<TlsStream<TcpStream>>),
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Connection::Http(_) => f.pad("Http(..)"),
            Connection::Https(_) => f.pad("Https(..)"),
        }
    }
}

impl HyperConnection for Connection {
    fn connected(&self) -> Connected {
        match self {
            Connection::Http(tcp) => tcp.connected(),
            Connection::Https(tls) => {
                let (tcp, session) = tls.inner().get_ref();
                let connected = tcp.connected();
                if session.alpn_protocol() == Some(b"h2") {
                    connected.negotiated_h2()
                } else {
                    connected
                }
            }
        }
    }
}

impl Read for Connection {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Http(io) => Pin::new(io).poll_read(cx, buf),
            Connection::Https(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl Write for Connection {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Http(io) => Pin::new(io).poll_write(cx, buf),
            Connection::Https(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Http(io) => Pin::new(io).poll_flush(cx),
            Connection::Https(io) => Pin::new(io).poll_flush(cx),
        }
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Http(io) => Pin::new(io).poll_shutdown(cx),
            Connection::Https(io) => Pin::new(io).poll_shutdown(cx),
        }
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        match self {
            Connection::Http(io) => io.is_write_vectored(),
            Connection::Https(io) => io.is_write_vectored(),
        }
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Http(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Connection::Https(io) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }
}
