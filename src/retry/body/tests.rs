//! The body copies: replay, limits, size hints, and the copies waiting for the original.

use super::*;

use std::{
    collections::VecDeque,
    io,
    sync::atomic::{AtomicUsize, Ordering},
};

use fortify_test_support::bodies::Chunked;
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
    let (tx, fed) = Chunked::fed(4);
    let original = ReplayBody::new(fed);
    let copy = original.try_clone_body().unwrap();

    let a = tokio::spawn(original.collect());
    let b = tokio::spawn(copy.collect());
    tokio::task::yield_now().await;
    for chunk in ["one ", "two ", "three"] {
        tx.try_send(Bytes::from_static(chunk.as_bytes())).unwrap();
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
    let (tx, fed) = Chunked::fed(4);
    let mut first = ReplayBody::new(fed);
    let mut second = first.try_clone_body().unwrap();
    let wakes = [(); 2].map(|()| Arc::new(Wakes(0.into())));
    let wakers = wakes.clone().map(Waker::from);
    let poll = |body: &mut ReplayBody<Chunked>, i: usize| {
        Pin::new(body).poll_frame(&mut Context::from_waker(&wakers[i]))
    };
    assert!(poll(&mut first, 0).is_pending());
    // The second polls last: the channel holds its waker only, the first waits.
    assert!(poll(&mut second, 1).is_pending());
    tx.try_send(Bytes::from_static(b"abc")).unwrap();
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
    let (tx, fed) = Chunked::fed(4);
    let original = ReplayBody::new(fed);
    let copy = original.try_clone_body().unwrap();

    let waiting = tokio::spawn(original.collect());
    tokio::task::yield_now().await;
    // The second copy polls last: the channel now holds its waker only.
    let holder = tokio::spawn(copy.collect());
    tokio::task::yield_now().await;
    holder.abort();
    let _ = holder.await;

    tx.try_send(Bytes::from_static(b"late")).unwrap();
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
