//! Request bodies that can be sent again: [`TryCloneBody`] and [`ReplayBody`].
//!
//! A retry must send the same method, URI, headers and body bytes as the first attempt. A
//! `Clone` body can simply be copied. Any other body (a stream, hyper's `Incoming` when a
//! proxy forwards a request) is read once; [`ReplayBody`] keeps what was read, up to a limit,
//! so that a copy can yield it again and then go on where the original stream is.

use std::{
    fmt,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError},
    task::{Context, Poll, Waker},
};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use super::error::{BodyNotReplayable, Lost};
use crate::BoxError;

/// A body the retry layer can copy for another attempt.
///
/// Every `Clone` body is one, through a blanket impl (`http_body_util::Full<Bytes>`,
/// `http_body_util::Empty<Bytes>`, `String`, ...). [`ReplayBody`] makes any other body one,
/// as long as it stays under its limit.
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use tower_fortify::retry::TryCloneBody;
///
/// let body = Full::new(Bytes::from_static(b"hello"));
/// assert!(body.try_clone_body().is_some());
///
/// let body = String::from("hello");
/// assert_eq!(body.try_clone_body().as_deref(), Some("hello"));
/// ```
pub trait TryCloneBody: Sized {
    /// A copy that will yield the same bytes (and trailers), or `None` when that is no longer
    /// possible (a [`ReplayBody`] whose original went past its limit).
    ///
    /// ```
    /// use tower_fortify::retry::TryCloneBody;
    ///
    /// let body = String::from("hello");
    /// let copy = body.try_clone_body().expect("a Clone body can always be copied");
    /// assert_eq!(copy, body);
    /// ```
    fn try_clone_body(&self) -> Option<Self>;
}

impl<B: Clone> TryCloneBody for B {
    fn try_clone_body(&self) -> Option<Self> {
        Some(self.clone())
    }
}

/// Makes any [`Body`] replayable, by keeping up to a limit of the bytes read from it.
///
/// The retry layer makes a copy with [`try_clone_body`](TryCloneBody::try_clone_body) for
/// every attempt. Each copy first yields the data it has not yet yielded from what was kept,
/// then goes on reading the original body from where it is (keeping what it reads), then
/// yields the trailers, then ends. A copy dropped half-way through the original leaves the
/// stream where it was, for the next copy to go on from, so every byte of the original is
/// read exactly once.
///
/// A body larger than the limit (default [`DEFAULT_LIMIT`](Self::DEFAULT_LIMIT), 64 KiB)
/// makes the request not retryable, and nothing else: the chunk that goes past the limit is
/// still yielded, the kept bytes are freed, and from then on
/// [`try_clone_body`](TryCloneBody::try_clone_body) returns `None` and
/// [`is_capped`](Self::is_capped) returns `true`. The body is still sent once, completely.
///
/// Data frames are yielded as [`Bytes`] (`Buf::copy_to_bytes`, which does not copy when the
/// original's data is already `Bytes`).
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::{BodyExt, Full};
/// use tower_fortify::retry::{ReplayBody, TryCloneBody};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let body = ReplayBody::new(Full::new(Bytes::from_static(b"hello")));
/// let copy = body.try_clone_body().expect("under the limit");
///
/// // The first attempt sends the original ...
/// assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
/// // ... and a retry sends the same bytes again.
/// assert_eq!(copy.collect().await.unwrap().to_bytes(), "hello");
/// # }
/// ```
///
/// # Clone
///
/// `ReplayBody` is not `Clone`: copies are made with
/// [`try_clone_body`](TryCloneBody::try_clone_body), which can refuse. All copies share one
/// state (the original body and the kept bytes); each keeps its own position in it.
///
/// Copies are meant to be polled one after the other (the retry layer polls a copy once the
/// previous attempt is over), but polling several at once is safe: what one reads from the
/// original is kept for the others, and copies waiting for the original are woken when
/// another reads from it or is dropped.
///
/// # Errors
///
/// The original body's errors, boxed. A copy that must yield bytes that were already freed
/// (it was made before the body went past its limit, or before the original body failed)
/// yields [`BodyNotReplayable`](super::error::BodyNotReplayable), never wrong bytes.
///
/// # Memory
///
/// Up to `limit` bytes of data are kept, plus the trailers, until the last copy is dropped.
pub struct ReplayBody<B> {
    shared: Arc<Mutex<State<B>>>,
    /// Index in `State::chunks` of the next chunk this copy yields.
    next_chunk: usize,
    /// Data bytes this copy has yielded.
    yielded: usize,
    /// Whether this copy is done with the trailers (yielded them, or read them itself).
    trailers_done: bool,
}

/// What all copies of a [`ReplayBody`] share.
///
/// A std `Mutex` is enough here: it is locked once per body frame (and when a copy is made
/// or dropped), never across an `.await`, and copies are in practice polled one at a time,
/// so it is not contended.
struct State<B> {
    /// The original body, boxed once so that any copy can poll it; `None` once it ended.
    body: Option<Pin<Box<B>>>,
    /// The original's size hint as of its last frame, so that a copy can compute its own
    /// hint without polling.
    body_hint: SizeHint,
    /// The non-empty data chunks read so far, in order; freed once `lost` is set.
    chunks: Vec<Bytes>,
    /// How many non-empty data chunks were read from the original (`chunks.len()` until
    /// the chunks are freed): a copy whose position is behind this after that is stale.
    chunks_read: usize,
    /// Bytes in `chunks`.
    buffered: usize,
    limit: usize,
    trailers: Option<HeaderMap>,
    /// Set when the chunks were freed: copies can no longer be made.
    lost: Option<Lost>,
    /// Copies that found the original pending; the copy whose waker the original holds may
    /// be dropped, or read for everyone, so the others are woken then.
    waiters: Vec<Waker>,
}

// ===== impl ReplayBody =====

impl<B: Body> ReplayBody<B> {
    /// The limit [`new`](Self::new) uses: 64 KiB.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use tower_fortify::retry::ReplayBody;
    ///
    /// assert_eq!(ReplayBody::<Full<Bytes>>::DEFAULT_LIMIT, 64 * 1024);
    /// ```
    pub const DEFAULT_LIMIT: usize = 64 * 1024;

    /// Wraps `body`, keeping up to [`DEFAULT_LIMIT`](Self::DEFAULT_LIMIT) bytes of it.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::Full;
    /// use tower_fortify::retry::{ReplayBody, TryCloneBody};
    ///
    /// let body = ReplayBody::new(Full::new(Bytes::from_static(b"hello")));
    /// assert!(body.try_clone_body().is_some());
    /// ```
    pub fn new(body: B) -> Self {
        Self::with_limit(body, Self::DEFAULT_LIMIT)
    }

    /// Wraps `body`, keeping up to `limit` bytes of it: a body with more data than that
    /// cannot be replayed.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::{BodyExt, Empty, Full};
    /// use tower_fortify::retry::{ReplayBody, TryCloneBody};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // A limit of 0 keeps only empty bodies replayable.
    /// let empty = ReplayBody::with_limit(Empty::<Bytes>::new(), 0);
    /// empty.try_clone_body().unwrap().collect().await.unwrap();
    /// assert!(empty.try_clone_body().is_some());
    ///
    /// let full = ReplayBody::with_limit(Full::new(Bytes::from_static(b"x")), 0);
    /// full.try_clone_body().unwrap().collect().await.unwrap();
    /// assert!(full.try_clone_body().is_none());
    /// # }
    /// ```
    pub fn with_limit(body: B, limit: usize) -> Self {
        let (body, body_hint) = if body.is_end_stream() {
            (None, SizeHint::with_exact(0))
        } else {
            let hint = body.size_hint();
            (Some(Box::pin(body)), hint)
        };
        let state = State {
            body,
            body_hint,
            chunks: Vec::new(),
            chunks_read: 0,
            buffered: 0,
            limit,
            trailers: None,
            lost: None,
            waiters: Vec::new(),
        };
        ReplayBody {
            shared: Arc::new(Mutex::new(state)),
            next_chunk: 0,
            yielded: 0,
            trailers_done: false,
        }
    }

    /// True once more than `limit` bytes went through (or the original body failed): copies
    /// can no longer be made.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http_body_util::{BodyExt, Full};
    /// use tower_fortify::retry::{ReplayBody, TryCloneBody};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let body = ReplayBody::with_limit(Full::new(Bytes::from(vec![0u8; 100])), 64);
    /// let copy = body.try_clone_body().unwrap();
    /// assert!(!copy.is_capped());
    ///
    /// assert_eq!(body.collect().await.unwrap().to_bytes().len(), 100);
    /// assert!(copy.is_capped());
    /// assert!(copy.try_clone_body().is_none());
    /// # }
    /// ```
    pub fn is_capped(&self) -> bool {
        lock(&self.shared).lost.is_some()
    }
}

impl<B> TryCloneBody for ReplayBody<B> {
    fn try_clone_body(&self) -> Option<Self> {
        if lock(&self.shared).lost.is_some() {
            return None;
        }
        Some(ReplayBody {
            shared: Arc::clone(&self.shared),
            next_chunk: 0,
            yielded: 0,
            trailers_done: false,
        })
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        // `ReplayBody` is `Unpin`: the original body is pinned in its own box.
        let this = self.get_mut();
        let mut guard = lock(&this.shared);
        let state = &mut *guard;

        // First what this copy has not yet yielded of what was read.
        if this.next_chunk < state.chunks_read {
            let Some(chunk) = state.chunks.get(this.next_chunk) else {
                let reason = state.lost.unwrap_or(Lost::Capped);
                return Poll::Ready(Some(Err(BodyNotReplayable { reason }.into())));
            };
            this.next_chunk += 1;
            this.yielded += chunk.len();
            return Poll::Ready(Some(Ok(Frame::data(chunk.clone()))));
        }

        // Then the original, from where it is.
        if let Some(body) = state.body.as_mut() {
            match body.as_mut().poll_frame(cx) {
                Poll::Pending => {
                    state.wait(cx.waker());
                    return Poll::Pending;
                }
                Poll::Ready(Some(Err(err))) => {
                    state.lose(Lost::Failed);
                    state.wake_others(cx.waker());
                    return Poll::Ready(Some(Err(err.into())));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let frame = frame.map_data(|mut data| data.copy_to_bytes(data.remaining()));
                    if let Some(data) = frame.data_ref() {
                        if !data.is_empty() {
                            state.keep(data);
                            this.next_chunk = state.chunks_read;
                        }
                        this.yielded += data.len();
                    } else if let Some(trailers) = frame.trailers_ref() {
                        state.trailers = Some(trailers.clone());
                        this.trailers_done = true;
                    }
                    state.after_frame(frame.is_trailers());
                    state.wake_others(cx.waker());
                    return Poll::Ready(Some(Ok(frame)));
                }
                Poll::Ready(None) => {
                    state.end();
                    state.wake_others(cx.waker());
                }
            }
        }

        // Then the trailers, then the end.
        if !this.trailers_done {
            this.trailers_done = true;
            if let Some(trailers) = &state.trailers {
                return Poll::Ready(Some(Ok(Frame::trailers(trailers.clone()))));
            }
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        let state = lock(&self.shared);
        self.next_chunk >= state.chunks_read
            && state.body.is_none()
            && (self.trailers_done || state.trailers.is_none())
    }

    fn size_hint(&self) -> SizeHint {
        let state = lock(&self.shared);
        let buffered = match state.lost {
            // A stale copy: it will yield an error.
            Some(_) if self.next_chunk < state.chunks_read => return SizeHint::default(),
            Some(_) => 0,
            None => state.buffered.saturating_sub(self.yielded),
        };
        let buffered = u64::try_from(buffered).unwrap_or(u64::MAX);
        let mut hint = SizeHint::new();
        hint.set_lower(state.body_hint.lower().saturating_add(buffered));
        if let Some(upper) = state.body_hint.upper() {
            hint.set_upper(upper.saturating_add(buffered));
        }
        hint
    }
}

impl<B> Drop for ReplayBody<B> {
    fn drop(&mut self) {
        // This copy may be the one whose waker the original holds: wake the others, so that
        // one of them polls the original again. Nobody to wake when this is the last copy.
        if Arc::strong_count(&self.shared) > 1 {
            let mut state = lock(&self.shared);
            for waker in state.waiters.drain(..) {
                waker.wake();
            }
        }
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("ReplayBody");
        s.field("next_chunk", &self.next_chunk)
            .field("yielded", &self.yielded);
        // `try_lock`, so that formatting never waits for a copy being polled.
        let state = match self.shared.try_lock() {
            Ok(state) => Some(state),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        if let Some(state) = state {
            s.field("limit", &state.limit)
                .field("buffered", &state.buffered)
                .field("ended", &state.body.is_none())
                .field("capped", &state.lost.is_some());
        }
        s.finish_non_exhaustive()
    }
}

// ===== impl State =====

impl<B: Body> State<B> {
    /// Updates what is known of the original after it yielded a frame.
    fn after_frame(&mut self, was_trailers: bool) {
        match &self.body {
            // Trailers are the last frame; a body that says it ended will yield nothing more
            // (hyper stops polling it then, so it must be noticed here).
            Some(body) if !was_trailers && !body.is_end_stream() => {
                self.body_hint = body.size_hint();
            }
            _ => self.end(),
        }
    }
}

impl<B> State<B> {
    fn end(&mut self) {
        self.body = None;
        self.body_hint = SizeHint::with_exact(0);
    }

    /// Keeps a non-empty chunk read from the original, or frees everything kept when it
    /// goes past the limit.
    fn keep(&mut self, data: &Bytes) {
        self.chunks_read += 1;
        if self.lost.is_some() {
            return;
        }
        if data.len() > self.limit.saturating_sub(self.buffered) {
            self.lose(Lost::Capped);
        } else {
            self.chunks.push(data.clone());
            self.buffered += data.len();
        }
    }

    fn lose(&mut self, reason: Lost) {
        if self.lost.is_none() {
            self.lost = Some(reason);
            self.chunks = Vec::new();
            self.buffered = 0;
        }
    }

    fn wait(&mut self, waker: &Waker) {
        if !self.waiters.iter().any(|w| w.will_wake(waker)) {
            self.waiters.push(waker.clone());
        }
    }

    /// Wakes the copies waiting for the original, except the one that just polled it.
    fn wake_others(&mut self, me: &Waker) {
        // `drain` keeps the capacity: no allocation per frame.
        for waker in self.waiters.drain(..) {
            if !waker.will_wake(me) {
                waker.wake();
            }
        }
    }
}

fn lock<B>(shared: &Mutex<State<B>>) -> MutexGuard<'_, State<B>> {
    // The state is consistent between statements that can panic (the original's poll), so a
    // poisoned lock is still usable; a panic here would only spread the first one.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::{
        collections::VecDeque,
        io,
        sync::atomic::{AtomicUsize, Ordering},
    };

    use http::HeaderValue;
    use http_body_util::{BodyExt, Empty, Full};

    /// A body over a queue of frames, counting the frames it yields.
    struct QueueBody {
        frames: VecDeque<Result<Frame<Bytes>, io::Error>>,
        /// Report an exact size hint (the data left in the queue).
        exact: bool,
        polled: Arc<AtomicUsize>,
    }

    impl QueueBody {
        fn new(chunks: &[&[u8]]) -> Self {
            QueueBody {
                frames: chunks
                    .iter()
                    .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
                    .collect(),
                exact: false,
                polled: Arc::new(AtomicUsize::new(0)),
            }
        }

        fn exact(mut self) -> Self {
            self.exact = true;
            self
        }

        fn with_trailers(mut self, trailers: HeaderMap) -> Self {
            self.frames.push_back(Ok(Frame::trailers(trailers)));
            self
        }

        fn then_error(mut self) -> Self {
            self.frames.push_back(Err(io::Error::other("boom")));
            self
        }

        fn remaining(&self) -> u64 {
            self.frames
                .iter()
                .filter_map(|f| f.as_ref().ok()?.data_ref())
                .map(|d| d.len() as u64)
                .sum()
        }
    }

    impl Body for QueueBody {
        type Data = Bytes;
        type Error = io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
            let frame = self.frames.pop_front();
            if frame.is_some() {
                self.polled.fetch_add(1, Ordering::SeqCst);
            }
            Poll::Ready(frame)
        }

        fn is_end_stream(&self) -> bool {
            self.exact && self.frames.is_empty()
        }

        fn size_hint(&self) -> SizeHint {
            if self.exact {
                SizeHint::with_exact(self.remaining())
            } else {
                SizeHint::default()
            }
        }
    }

    /// A body fed through a channel: pending until a chunk is sent, ended when the sender
    /// is dropped.
    struct ChannelBody(tokio::sync::mpsc::UnboundedReceiver<Bytes>);

    impl Body for ChannelBody {
        type Data = Bytes;
        type Error = io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
            self.0
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
        }
    }

    fn trailers() -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert("x-checksum", HeaderValue::from_static("abc"));
        map
    }

    /// Polls a body that is always ready to its end.
    fn poll_once<B: Body + Unpin>(body: &mut B) -> Option<Result<Frame<B::Data>, B::Error>> {
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(body).poll_frame(&mut cx) {
            Poll::Ready(frame) => frame,
            Poll::Pending => panic!("test body is never pending"),
        }
    }

    /// Reads a copy to its end: the data and the trailers.
    fn drain<B>(body: &mut ReplayBody<B>) -> Result<(Vec<u8>, Option<HeaderMap>), BoxError>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let mut data = Vec::new();
        let mut trailers = None;
        while let Some(frame) = poll_once(body) {
            let frame = frame?;
            if let Some(d) = frame.data_ref() {
                data.extend_from_slice(d);
            } else if let Some(t) = frame.trailers_ref() {
                assert!(trailers.is_none(), "trailers twice");
                trailers = Some(t.clone());
            }
        }
        Ok((data, trailers))
    }

    fn data(frame: Option<Result<Frame<Bytes>, BoxError>>) -> Bytes {
        frame
            .expect("a frame")
            .expect("no error")
            .into_data()
            .expect("a data frame")
    }

    #[tokio::test]
    async fn under_the_limit_every_copy_yields_the_same_bytes_and_trailers() {
        let inner = QueueBody::new(&[b"hello ", b"", b"wide ", b"world"]).with_trailers(trailers());
        let original = ReplayBody::new(inner);
        let before = original.try_clone_body().expect("fresh body");

        let collected = original.collect().await.expect("original");
        assert_eq!(collected.trailers(), Some(&trailers()));
        assert_eq!(collected.to_bytes(), "hello wide world");

        assert!(!before.is_capped());
        let third = before.try_clone_body().expect("still under the limit");
        let collected = before.collect().await.expect("copy made before");
        assert_eq!(collected.trailers(), Some(&trailers()));
        assert_eq!(collected.to_bytes(), "hello wide world");

        let collected = third.collect().await.expect("copy made after");
        assert_eq!(collected.trailers(), Some(&trailers()));
        assert_eq!(collected.to_bytes(), "hello wide world");
    }

    #[test]
    fn a_copy_goes_on_where_a_dropped_copy_left_the_stream() {
        let inner = QueueBody::new(&[b"a1", b"b2", b"c3", b"d4"]).with_trailers(trailers());
        let polled = Arc::clone(&inner.polled);
        let mut original = ReplayBody::new(inner);
        let template = original.try_clone_body().unwrap();

        assert_eq!(data(poll_once(&mut original)), "a1");
        assert_eq!(data(poll_once(&mut original)), "b2");
        drop(original);

        let mut copy = template.try_clone_body().unwrap();
        let mut chunks = Vec::new();
        while let Some(frame) = poll_once(&mut copy) {
            let frame = frame.unwrap();
            match frame.into_data() {
                Ok(d) => chunks.push(d),
                Err(frame) => assert_eq!(frame.into_trailers().unwrap(), trailers()),
            }
        }
        assert_eq!(chunks, ["a1", "b2", "c3", "d4"]);
        // Each frame of the original was read once: 4 chunks and the trailers.
        assert_eq!(polled.load(Ordering::SeqCst), 5);

        // And the template still replays it all, without touching the original.
        let mut again = template;
        assert_eq!(
            drain(&mut again).unwrap(),
            (b"a1b2c3d4".to_vec(), Some(trailers()))
        );
        assert_eq!(polled.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn over_the_limit_the_original_loses_nothing_and_copies_are_refused() {
        let input: Vec<Vec<u8>> = (0u8..10).map(|i| vec![i; 100]).collect();
        let chunks: Vec<&[u8]> = input.iter().map(Vec::as_slice).collect();
        let mut original = ReplayBody::with_limit(QueueBody::new(&chunks), 450);
        let earlier = original.try_clone_body().unwrap();

        let (bytes, trailers) = drain(&mut original).unwrap();
        assert_eq!(bytes, input.concat());
        assert_eq!(trailers, None);

        assert!(original.is_capped());
        assert!(earlier.is_capped());
        assert!(original.try_clone_body().is_none());
        assert!(earlier.try_clone_body().is_none());

        let mut stale = earlier;
        let err = poll_once(&mut stale).unwrap().unwrap_err();
        let err = err
            .downcast_ref::<BodyNotReplayable>()
            .expect("BodyNotReplayable");
        assert_eq!(err.to_string(), "body exceeded the replay limit");
    }

    #[test]
    fn the_chunk_that_crosses_the_limit_is_still_yielded() {
        let mut original = ReplayBody::with_limit(QueueBody::new(&[b"1234", b"5678"]), 6);
        let mut stale = original.try_clone_body().unwrap();
        assert_eq!(data(poll_once(&mut original)), "1234");
        assert!(!original.is_capped());
        assert_eq!(data(poll_once(&mut original)), "5678");
        assert!(original.is_capped());
        assert!(poll_once(&mut original).is_none());
        assert!(poll_once(&mut stale).unwrap().is_err());
    }

    #[test]
    fn exactly_the_limit_stays_replayable() {
        let mut original = ReplayBody::with_limit(QueueBody::new(&[b"1234", b"56"]), 6);
        drain(&mut original).unwrap();
        assert!(!original.is_capped());
        let mut copy = original.try_clone_body().unwrap();
        assert_eq!(drain(&mut copy).unwrap().0, b"123456");
    }

    #[test]
    fn limit_zero_caps_any_data_but_keeps_empty_bodies_replayable() {
        let mut full = ReplayBody::with_limit(QueueBody::new(&[b"x"]), 0);
        assert_eq!(drain(&mut full).unwrap().0, b"x");
        assert!(full.is_capped());
        assert!(full.try_clone_body().is_none());

        let mut empty = ReplayBody::with_limit(QueueBody::new(&[b"", b""]), 0);
        assert_eq!(drain(&mut empty).unwrap().0, b"");
        assert!(!empty.is_capped());
        let mut copy = empty.try_clone_body().unwrap();
        assert_eq!(drain(&mut copy).unwrap(), (Vec::new(), None));

        let mut empty = ReplayBody::with_limit(Empty::<Bytes>::new(), 0);
        assert!(empty.is_end_stream());
        assert_eq!(drain(&mut empty).unwrap(), (Vec::new(), None));
        assert!(empty.try_clone_body().is_some());
    }

    #[test]
    fn size_hint_and_end_of_stream_are_exact_for_every_copy() {
        let inner = QueueBody::new(&[b"abc", b"de", b"f"]).exact();
        let mut original = ReplayBody::new(inner);
        let mut before = original.try_clone_body().unwrap();
        assert_eq!(original.size_hint().exact(), Some(6));
        assert_eq!(before.size_hint().exact(), Some(6));
        assert!(!original.is_end_stream());

        assert_eq!(data(poll_once(&mut original)), "abc");
        assert_eq!(original.size_hint().exact(), Some(3));
        // The copy still has the 3 kept bytes to replay, then the 3 left in the original.
        assert_eq!(before.size_hint().exact(), Some(6));

        assert_eq!(data(poll_once(&mut before)), "abc");
        assert_eq!(before.size_hint().exact(), Some(3));

        assert_eq!(data(poll_once(&mut original)), "de");
        assert_eq!(data(poll_once(&mut original)), "f");
        assert_eq!(original.size_hint().exact(), Some(0));
        // The original said it ended: hyper would stop polling here.
        assert!(original.is_end_stream());
        assert!(!before.is_end_stream());
        assert_eq!(before.size_hint().exact(), Some(3));

        let mut after = original.try_clone_body().unwrap();
        assert_eq!(after.size_hint().exact(), Some(6));
        assert!(!after.is_end_stream());
        assert_eq!(drain(&mut after).unwrap().0, b"abcdef");
        assert!(after.is_end_stream());
        assert_eq!(after.size_hint().exact(), Some(0));

        assert_eq!(data(poll_once(&mut before)), "de");
        assert_eq!(before.size_hint().exact(), Some(1));
        assert_eq!(data(poll_once(&mut before)), "f");
        assert!(before.is_end_stream());
    }

    #[test]
    fn size_hint_past_the_limit_is_the_originals_rest_and_unknown_for_a_stale_copy() {
        let inner = QueueBody::new(&[b"abc", b"de", b"f"]).exact();
        let mut original = ReplayBody::with_limit(inner, 4);
        let stale = original.try_clone_body().unwrap();
        assert_eq!(data(poll_once(&mut original)), "abc");
        assert_eq!(data(poll_once(&mut original)), "de");
        assert!(original.is_capped());
        // The original reads on: its 1 byte left. The copy would need the bytes freed: it
        // will yield an error, and says nothing of its size.
        assert_eq!(original.size_hint().exact(), Some(1));
        let hint = stale.size_hint();
        assert_eq!((hint.lower(), hint.upper()), (0, None));
    }

    #[test]
    fn size_hint_without_an_exact_inner_hint_counts_the_kept_bytes() {
        let mut original = ReplayBody::new(QueueBody::new(&[b"abc", b"de"]));
        let copy = original.try_clone_body().unwrap();
        assert_eq!(data(poll_once(&mut original)), "abc");
        let hint = copy.size_hint();
        assert_eq!((hint.lower(), hint.upper()), (3, None));
    }

    #[test]
    fn trailers_wait_for_a_copy_to_replay_its_data() {
        let inner = QueueBody::new(&[b"abc"]).with_trailers(trailers());
        let mut original = ReplayBody::new(inner);
        let copy = original.try_clone_body().unwrap();
        drain(&mut original).unwrap();
        assert!(original.is_end_stream());
        assert!(!copy.is_end_stream());
        let mut copy = copy;
        assert_eq!(data(poll_once(&mut copy)), "abc");
        assert!(!copy.is_end_stream());
        let frame = poll_once(&mut copy).unwrap().unwrap();
        assert_eq!(frame.into_trailers().unwrap(), trailers());
        assert!(copy.is_end_stream());
        assert!(poll_once(&mut copy).is_none());
    }

    #[test]
    fn an_error_from_the_original_makes_the_body_not_replayable() {
        let mut original = ReplayBody::new(QueueBody::new(&[b"abc"]).then_error());
        let mut stale = original.try_clone_body().unwrap();
        assert_eq!(data(poll_once(&mut original)), "abc");
        let err = poll_once(&mut original).unwrap().unwrap_err();
        assert!(err.is::<io::Error>());
        assert!(original.is_capped());
        assert!(original.try_clone_body().is_none());

        let err = poll_once(&mut stale).unwrap().unwrap_err();
        let err = err.downcast_ref::<BodyNotReplayable>().unwrap();
        assert_eq!(err.to_string(), "body failed before it could be replayed");
    }

    #[tokio::test(start_paused = true)]
    async fn copies_polled_together_share_the_reads() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let original = ReplayBody::new(ChannelBody(rx));
        let copy = original.try_clone_body().unwrap();

        let a = tokio::spawn(original.collect());
        let b = tokio::spawn(copy.collect());
        tokio::task::yield_now().await;
        for chunk in ["one ", "two ", "three"] {
            tx.send(Bytes::from_static(chunk.as_bytes())).unwrap();
            tokio::task::yield_now().await;
        }
        drop(tx);

        let within = std::time::Duration::from_secs(5);
        let a = tokio::time::timeout(within, a).await.expect("a hung");
        let b = tokio::time::timeout(within, b).await.expect("b hung");
        assert_eq!(a.unwrap().unwrap().to_bytes(), "one two three");
        assert_eq!(b.unwrap().unwrap().to_bytes(), "one two three");
    }

    /// A waker that counts its wakes.
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_frame_read_by_one_copy_wakes_the_copies_waiting_and_not_itself() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut first = ReplayBody::new(ChannelBody(rx));
        let mut second = first.try_clone_body().unwrap();
        let wakes = [(); 2].map(|()| Arc::new(Wakes(0.into())));
        let wakers = wakes.clone().map(Waker::from);
        let poll = |body: &mut ReplayBody<ChannelBody>, i: usize| {
            Pin::new(body).poll_frame(&mut Context::from_waker(&wakers[i]))
        };
        assert!(poll(&mut first, 0).is_pending());
        // The second polls last: the channel holds its waker only, the first waits.
        assert!(poll(&mut second, 1).is_pending());
        tx.send(Bytes::from_static(b"abc")).unwrap();
        assert_eq!(wakes.each_ref().map(|w| w.0.load(Ordering::SeqCst)), [0, 1]);
        let Poll::Ready(Some(Ok(frame))) = poll(&mut second, 1) else {
            panic!("the sent chunk")
        };
        assert_eq!(frame.into_data().unwrap(), "abc");
        // Both copies still alive: the first is woken by the read, not by a drop.
        assert_eq!(wakes.each_ref().map(|w| w.0.load(Ordering::SeqCst)), [1, 1]);
        let Poll::Ready(Some(Ok(frame))) = poll(&mut first, 0) else {
            panic!("the kept chunk")
        };
        assert_eq!(frame.into_data().unwrap(), "abc");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_copy_is_woken_when_the_copy_holding_the_waker_is_dropped() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let original = ReplayBody::new(ChannelBody(rx));
        let copy = original.try_clone_body().unwrap();

        let waiting = tokio::spawn(original.collect());
        tokio::task::yield_now().await;
        // The second copy polls last: the channel now holds its waker only.
        let holder = tokio::spawn(copy.collect());
        tokio::task::yield_now().await;
        holder.abort();
        let _ = holder.await;

        tx.send(Bytes::from_static(b"late")).unwrap();
        drop(tx);
        let within = std::time::Duration::from_secs(5);
        let got = tokio::time::timeout(within, waiting).await.expect("hung");
        assert_eq!(got.unwrap().unwrap().to_bytes(), "late");
    }

    #[test]
    fn clone_bodies_are_try_clone() {
        let full = Full::new(Bytes::from_static(b"abc"));
        assert!(full.try_clone_body().is_some());
        let s = String::from("abc");
        assert_eq!(s.try_clone_body(), Some(s));
    }

    #[test]
    fn debug_does_not_need_a_debug_body() {
        let body = ReplayBody::with_limit(QueueBody::new(&[b"abc"]), 7);
        let debug = format!("{body:?}");
        assert!(debug.starts_with("ReplayBody {"), "{debug}");
        assert!(debug.contains("limit: 7"), "{debug}");
    }

    #[test]
    fn auto_traits() {
        fn send_sync_unpin<T: Send + Sync + Unpin>() {}
        send_sync_unpin::<ReplayBody<Full<Bytes>>>();
        send_sync_unpin::<ReplayBody<hyper::body::Incoming>>();
        send_sync_unpin::<BodyNotReplayable>();
    }
}
