//! Heap allocations per call on the closed path of the circuit breaker, counted exactly with
//! a counting global allocator (its own test binary, so that no other test shares the
//! allocator).

use http::{Request, Response, Uri};
use std::{
    future::{ready, Ready},
    io,
    time::Duration,
};
use tower::{Layer, Service};
use tower_fortify::{
    circuit_breaker::{CircuitBreakerLayer, ErrorsOnly, GenericCircuitBreakerLayer, State, Window},
    key::{ByAuthority, RequestKey},
};

use fortify_test_support::counting_alloc::{self, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

fn request() -> Request<()> {
    let mut request = Request::new(());
    *request.uri_mut() = Uri::from_static("http://api.example.com/items");
    request
}

/// `n` calls: the successes and the allocations.
fn drive<S>(svc: &mut S, n: u32) -> (u32, u64)
where
    S: Service<Request<()>, Response = Response<()>>,
{
    counting_alloc::drive(svc, n, |_| request())
}

fn ok_service() -> impl Service<
    Request<()>,
    Response = Response<()>,
    Error = io::Error,
    Future = Ready<Result<Response<()>, io::Error>>,
> + Clone {
    tower::service_fn(|_: Request<()>| ready(Ok::<_, io::Error>(Response::new(()))))
}

#[test]
fn the_request_costs_nothing() {
    // So that every allocation counted below is the breaker's.
    let (ok, allocated) = drive(&mut ok_service(), 1_000);
    assert_eq!((ok, allocated), (1_000, 0));
}

#[test]
fn closed_path_allocates_nothing() {
    let layers = [
        ("count window", GenericCircuitBreakerLayer::new()),
        (
            "time window",
            CircuitBreakerLayer::builder()
                .window(Window::Time(Duration::from_secs(10)))
                .build_generic()
                .unwrap(),
        ),
        (
            "slow-call detection",
            CircuitBreakerLayer::builder()
                .slow_call_duration(Duration::from_secs(1))
                .build_generic()
                .unwrap(),
        ),
    ];
    for (what, layer) in layers {
        // Building the service and its first calls (lane assignment) may allocate: once.
        let mut svc = layer.layer(ok_service());
        drive(&mut svc, 10);
        let (ok, allocated) = drive(&mut svc, 10_000);
        assert_eq!(ok, 10_000, "{what}");
        assert_eq!(allocated, 0, "{what}: allocations on the closed path");
        assert_eq!(layer.handle().state(), State::Closed);
        assert_eq!(layer.handle().figures().failures(), 0);
    }
}

#[test]
fn closed_path_of_a_known_key_allocates_nothing() {
    let layer = CircuitBreakerLayer::builder().build().unwrap();
    let mut svc = layer.layer(ok_service());
    drive(&mut svc, 10); // the first call inserts the key
    let (ok, allocated) = drive(&mut svc, 10_000);
    assert_eq!((ok, allocated), (10_000, 0));
    assert_eq!(layer.handle().len(), 1);
}

#[test]
fn closed_path_of_a_known_key_from_a_parsed_uri_allocates_nothing() {
    // A URI parsed at run time (not a static one): the key shares its bytes (a reference
    // count), as the per-host pools' key does, and is looked up borrowed.
    let uri: Uri = String::from("https://API.example.com:8443/items")
        .parse()
        .unwrap();
    let layer = CircuitBreakerLayer::builder().build().unwrap();
    let mut svc = layer.layer(ok_service());
    let request = |_| {
        let mut request = Request::new(());
        *request.uri_mut() = uri.clone();
        request
    };
    counting_alloc::drive(&mut svc, 10, request); // the first call inserts the key
    let (ok, allocated) = counting_alloc::drive(&mut svc, 10_000, request);
    assert_eq!((ok, allocated), (10_000, 0));
    let breakers = layer.handle().breakers();
    let keys: Vec<_> = breakers.iter().map(|b| b.key()).collect();
    assert_eq!(keys, [Some("https://API.example.com:8443")]);
}

#[test]
fn closed_path_of_one_breaker_for_every_host_allocates_nothing() {
    // `per_host(false)`: no key computed, no map searched.
    let layer = CircuitBreakerLayer::builder()
        .per_host(false)
        .build()
        .unwrap();
    let mut svc = layer.layer(ok_service());
    let (ok, allocated) = drive(&mut svc, 10_000);
    assert_eq!((ok, allocated), (10_000, 0));
}

#[test]
fn a_rejection_allocates_its_error_and_nothing_for_the_key() {
    // The rejected call's `Failure` and its `Open` source: two allocations. The key in the
    // `Open` shares the breaker's (a reference count), so a keyed breaker rejecting at full
    // rate in an outage does not copy it per call.
    for keyed in [false, true] {
        let (ok, allocated) = if keyed {
            let layer = CircuitBreakerLayer::builder().build().unwrap();
            let mut svc = layer.layer(ok_service());
            drive(&mut svc, 1); // inserts the key
            let key = layer
                .handle()
                .get(&ByAuthority.key(&request()))
                .expect("the request's key");
            key.force_open();
            drive(&mut svc, 1_000)
        } else {
            let layer = GenericCircuitBreakerLayer::new();
            layer.handle().force_open();
            drive(&mut layer.layer(ok_service()), 1_000)
        };
        assert_eq!(ok, 0, "keyed {keyed}: every call rejected");
        assert_eq!(
            allocated, 2_000,
            "keyed {keyed}: allocations for 1,000 rejections"
        );
    }
}

#[test]
fn any_request_type_allocates_nothing() {
    let layer = CircuitBreakerLayer::builder()
        .classifier(ErrorsOnly)
        .build_generic()
        .unwrap();
    let mut svc = layer.layer(tower::service_fn(|n: u64| ready(Ok::<_, io::Error>(n))));
    // Each call's answer is its own request's.
    let (ok, allocated) = counting_alloc::drive_checked(&mut svc, 10_000, u64::from, |i, m| {
        assert_eq!(m, u64::from(i))
    });
    assert_eq!((ok, allocated), (10_000, 0));
}

#[test]
fn the_counter_sees_allocations() {
    // The checks above can fail: a rejection allocates its error.
    let layer = GenericCircuitBreakerLayer::new();
    layer.handle().force_open();
    let mut svc = layer.layer(ok_service());
    let (ok, allocated) = drive(&mut svc, 100);
    assert_eq!(ok, 0);
    assert!(allocated >= 100, "{allocated}");
}
