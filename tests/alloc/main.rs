//! Heap allocations per call, counted exactly with a counting global allocator.

use std::io;
use tower::{Layer, Service};
use tower_fortify::classify::ErrorClassifyLayer;

use fortify_test_support::counting_alloc::{self, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

use counting_alloc::allocations;

mod mutants_decision;

/// `n` calls with the requests `0..n`: the successes and the allocations.
fn drive<S: Service<u32>>(svc: &mut S, n: u32) -> (u32, u64) {
    counting_alloc::drive(svc, n, |i| i)
}

#[test]
fn success_path_allocates_nothing() {
    let inner = tower::service_fn(|x: u32| std::future::ready(Ok::<_, io::Error>(x)));
    // Building the service registers metric handles and allocates: that is once per service.
    let mut svc = ErrorClassifyLayer::new().layer(inner);
    drive(&mut svc, 10);

    let (ok, allocated) = drive(&mut svc, 10_000);
    assert_eq!(ok, 10_000);
    assert_eq!(allocated, 0, "allocations on the success path");
}

#[test]
fn the_counter_sees_allocations() {
    // The check above can fail: an error path does allocate (the Failure box).
    let inner = tower::service_fn(|_: u32| {
        std::future::ready(Err::<u32, _>(io::Error::from(
            io::ErrorKind::ConnectionReset,
        )))
    });
    let mut svc = ErrorClassifyLayer::new().layer(inner);
    let (ok, allocated) = drive(&mut svc, 100);
    assert_eq!(ok, 0);
    assert!(allocated >= 100);
}

mod retry {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Full;
    use std::sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    };
    use tower_fortify::retry::{NoRetry, RetryLayer};

    /// `n` calls, each with a copy of `request` made by `copy`: the successes and the
    /// allocations (the copies' included).
    fn drive_requests<S>(svc: &mut S, request: &http::Request<Full<Bytes>>, n: u32) -> (u32, u64)
    where
        S: Service<http::Request<Full<Bytes>>>,
    {
        counting_alloc::drive(svc, n, |_| copy(request))
    }

    /// A request copy as the caller makes it. `drive_requests` makes one per call, so its
    /// allocations are counted with the layer's.
    fn copy(request: &http::Request<Full<Bytes>>) -> http::Request<Full<Bytes>> {
        let mut copy = http::Request::new(request.body().clone());
        *copy.method_mut() = request.method().clone();
        *copy.uri_mut() = request.uri().clone();
        *copy.headers_mut() = request.headers().clone();
        copy
    }

    fn request() -> http::Request<Full<Bytes>> {
        http::Request::get("http://127.0.0.1/items")
            .body(Full::new(Bytes::from_static(b"payload")))
            .unwrap()
    }

    fn inner() -> impl Service<
        http::Request<Full<Bytes>>,
        Response = http::Response<()>,
        Error = io::Error,
        Future = std::future::Ready<Result<http::Response<()>, io::Error>>,
    > + Clone {
        tower::service_fn(|_req: http::Request<Full<Bytes>>| {
            std::future::ready(Ok::<_, io::Error>(http::Response::new(())))
        })
    }

    #[test]
    fn success_path_of_a_request_without_headers_allocates_nothing() {
        let request = request();
        // The caller's copy of this request (a static URI, no headers, a `Bytes` body)
        // allocates nothing, measured after a first copy (which may promote the URI's
        // buffer to a shared one): every allocation counted below is the layer's.
        drop(copy(&request));
        let before = allocations();
        let _copy = copy(&request);
        assert_eq!(allocations() - before, 0, "the caller's copy");

        let mut svc = RetryLayer::builder().build().unwrap().layer(inner());
        drive_requests(&mut svc, &request, 10);
        let (ok, allocated) = drive_requests(&mut svc, &request, 1000);
        assert_eq!(ok, 1000);
        // Nor does the layer's own copy: no header fields to keep in its vector.
        assert_eq!(allocated, 0, "allocations in 1,000 calls");
    }

    #[test]
    fn the_copy_of_a_request_with_headers_is_one_allocation() {
        let mut request = request();
        // Static values: a copy takes no reference count and promotes no buffer.
        for (name, value) in [("accept", "application/json"), ("x-tenant", "t1")] {
            let value = http::HeaderValue::from_static(value);
            request.headers_mut().append(name, value);
        }
        // The caller's copy clones the header map: its index and its entries (measured
        // after a first copy, which may promote the URI's buffer to a shared one).
        drop(copy(&request));
        let before = allocations();
        let _copy = copy(&request);
        let caller_copy = allocations() - before;
        assert_eq!(caller_copy, 2);

        let mut svc = RetryLayer::builder().build().unwrap().layer(inner());
        drive_requests(&mut svc, &request, 10);
        let (ok, allocated) = drive_requests(&mut svc, &request, 1000);
        assert_eq!(ok, 1000);
        let per_call = allocated as f64 / 1000.0;
        // The layer keeps the fields in one vector.
        assert_eq!(
            per_call - caller_copy as f64,
            1.0,
            "the layer's allocations per call"
        );
    }

    /// A service whose calls fail (connection refused) and succeed in turn, counting them
    /// in `calls`.
    fn fails_then_succeeds(
        calls: &Arc<AtomicU32>,
    ) -> impl Service<
        http::Request<Full<Bytes>>,
        Response = http::Response<()>,
        Error = io::Error,
        Future = std::future::Ready<Result<http::Response<()>, io::Error>>,
    > + Clone {
        let calls = Arc::clone(calls);
        tower::service_fn(move |_req: http::Request<Full<Bytes>>| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(if n.is_multiple_of(2) {
                Err(io::Error::from(io::ErrorKind::ConnectionRefused))
            } else {
                Ok(http::Response::new(()))
            })
        })
    }

    /// One call with `request`, built before counting: the success (0 or 1) and the
    /// allocations of the call alone.
    fn call_once<S>(svc: &mut S, request: http::Request<Full<Bytes>>) -> (u32, u64)
    where
        S: Service<http::Request<Full<Bytes>>>,
    {
        let mut request = Some(request);
        counting_alloc::drive(svc, 1, |_| request.take().expect("one call"))
    }

    #[tokio::test]
    async fn a_retry_allocates_its_history() {
        // The checks above can fail: a retried call allocates more than the same failing
        // call not retried (its retry state and history, and the request the retry sends).
        let layer = RetryLayer::builder().build().unwrap();
        let calls = Arc::new(AtomicU32::new(0));
        let mut retried = layer.layer(fails_then_succeeds(&calls));
        // A first retried call sets up what a thread does once (the RNG of the jitter).
        assert_eq!(call_once(&mut retried, request()).0, 1);
        let (ok, retry_allocations) = call_once(&mut retried, request());
        assert_eq!(ok, 1, "the retry succeeds");
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        // The same failure with `NoRetry`: the layer returns it as it is.
        let calls = Arc::new(AtomicU32::new(0));
        let mut not_retried = layer.layer(fails_then_succeeds(&calls));
        let mut request = request();
        request.extensions_mut().insert(NoRetry);
        let (ok, plain_allocations) = call_once(&mut not_retried, request);
        assert_eq!(ok, 0, "the failure comes back");
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        assert!(
            retry_allocations > plain_allocations,
            "a retried call allocated {retry_allocations}, the failure alone {plain_allocations}"
        );
    }
}
