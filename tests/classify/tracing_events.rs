//! A tracing event per failure, with the fields the module docs promise.

#[path = "../support/capture.rs"]
mod capture;

use capture::Capture;
use tower::{Layer, ServiceExt};
use tower_fortify::classify::ErrorClassifyLayer;

#[tokio::test]
async fn each_failure_is_an_event() {
    let capture = Capture::new("tower_fortify::classify");
    let _guard = tracing::subscriber::set_default(capture.clone());
    // Another test's thread may have cached the callsites as uninteresting while no
    // subscriber was set: make them ask again.
    tracing::callsite::rebuild_interest_cache();

    let svc = ErrorClassifyLayer::connector()
        .name("backend")
        .layer(tower::service_fn(|ok: bool| async move {
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::from(std::io::ErrorKind::TimedOut))
            }
        }));
    svc.clone().oneshot(true).await.unwrap();
    svc.oneshot(false).await.unwrap_err();

    assert_eq!(capture.len(), 1, "one event for one failure");
    let get = |name: &str| capture.field(0, name);
    assert_eq!(get("name").as_deref(), Some("backend"));
    assert_eq!(get("stage").as_deref(), Some("connect"));
    assert_eq!(get("kind").as_deref(), Some("connect_timeout"));
    assert_eq!(get("category").as_deref(), Some("connect"));
    assert!(get("error").unwrap().contains("connect timeout"));
    assert!(get("elapsed_ms").is_some());
}
