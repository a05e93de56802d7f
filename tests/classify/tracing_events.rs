//! A tracing event per failure, with the fields the module docs promise.

use fortify_test_support::capture;

use capture::Capture;
use tower::{Layer, ServiceExt};
use tower_fortify::classify::ErrorClassifyLayer;

#[tokio::test]
async fn each_failure_is_an_event() {
    let capture = Capture::global("tower_fortify::classify");

    let svc = ErrorClassifyLayer::builder()
        .stage(tower_fortify::classify::Stage::Connect)
        .name("traced-backend")
        .build()
        .unwrap()
        .layer(tower::service_fn(|ok: bool| async move {
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::from(std::io::ErrorKind::TimedOut))
            }
        }));
    svc.clone().oneshot(true).await.unwrap();
    svc.oneshot(false).await.unwrap_err();

    let events = capture.matching("name", "traced-backend");
    assert_eq!(events.len(), 1, "one event for one failure: {events:?}");
    let get = |name: &str| capture::field(&events[0], name);
    assert_eq!(get("name").as_deref(), Some("traced-backend"));
    assert_eq!(get("stage").as_deref(), Some("connect"));
    assert_eq!(get("kind").as_deref(), Some("connect_timeout"));
    assert_eq!(get("category").as_deref(), Some("connect"));
    assert!(get("error").unwrap().contains("connect timeout"));
    assert!(get("elapsed_ms").is_some());
}
