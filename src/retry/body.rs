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
mod tests;
