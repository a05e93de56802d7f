//! One chunked body for the tests, as a request body (a streamed upload) or a response
//! body (streamed by a server, fed by the test, or failing part-way).

use std::{
    collections::VecDeque,
    io,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// A body yielding its chunks one frame each, not `Clone`.
///
/// By default it is always ready, gives no size hint and never says it ended before
/// yielding `None`, like a proxied request body. [`fed`](Chunked::fed) makes it wait for
/// the test's chunks, [`exact`](Chunked::exact) gives it an exact size hint, and
/// [`then_error`](Chunked::then_error) makes its last frame an error.
#[derive(Debug)]
pub struct Chunked {
    frames: VecDeque<Result<Bytes, io::Error>>,
    feed: Option<mpsc::Receiver<Bytes>>,
    exact: bool,
}

impl Chunked {
    /// `chunks`, one frame each.
    pub fn new<C: Into<Bytes>>(chunks: impl IntoIterator<Item = C>) -> Self {
        Chunked {
            frames: chunks.into_iter().map(|c| Ok(c.into())).collect(),
            feed: None,
            exact: false,
        }
    }

    /// A body fed by the test through the returned sender (`capacity` chunks buffered):
    /// pending until a chunk is sent, ended when the sender is dropped.
    pub fn fed(capacity: usize) -> (mpsc::Sender<Bytes>, Self) {
        let (tx, rx) = mpsc::channel(capacity);
        let body = Chunked {
            feed: Some(rx),
            ..Chunked::new(Vec::<Bytes>::new())
        };
        (tx, body)
    }

    /// `n` frames of one byte, `x`.
    pub fn bytes(n: usize) -> Self {
        Chunked::new((0..n).map(|_| Bytes::from_static(b"x")))
    }

    /// An exact size hint (the data bytes left), and `is_end_stream` as soon as the last
    /// frame is out.
    pub fn exact(mut self) -> Self {
        self.exact = true;
        self
    }

    /// The last frame replaced by an error of `kind` (a body with no frame gets one).
    pub fn then_error(mut self, kind: io::ErrorKind) -> Self {
        self.frames.pop_back();
        self.frames.push_back(Err(io::Error::from(kind)));
        self
    }

    fn remaining(&self) -> u64 {
        self.frames
            .iter()
            .filter_map(|f| f.as_ref().ok())
            .map(|d| d.len() as u64)
            .sum()
    }
}

impl Body for Chunked {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if let Some(frame) = self.frames.pop_front() {
            return Poll::Ready(Some(frame.map(Frame::data)));
        }
        match &mut self.feed {
            Some(feed) => feed
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| Ok(Frame::data(c)))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.exact && self.frames.is_empty() && self.feed.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact && self.feed.is_none() {
            SizeHint::with_exact(self.remaining())
        } else {
            SizeHint::default()
        }
    }
}

/// `len` bytes of a pattern that shows any reordering, and a body of them in chunks of
/// `chunk` bytes.
pub fn pattern(len: usize, chunk: usize) -> (Vec<u8>, Chunked) {
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let body = Chunked::new(data.chunks(chunk).map(Bytes::copy_from_slice));
    (data, body)
}
