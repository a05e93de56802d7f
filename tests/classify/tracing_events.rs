//! A tracing event per failure, with the fields the module docs promise.

use std::sync::{Arc, Mutex};
use tower::{Layer, ServiceExt};
use tower_fortify::classify::ErrorClassifyLayer;
use tracing::{
    field::{Field, Visit},
    span, Event, Metadata, Subscriber,
};

/// The fields of one event, as name and printed value.
type Fields = Vec<(String, String)>;

/// Records the fields of every event.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Fields>>>);

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        if event.metadata().target() != "tower_fortify::classify" {
            return;
        }
        let mut fields = Vec::new();
        event.record(&mut Visitor(&mut fields));
        self.0.lock().unwrap().push(fields);
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

#[tokio::test]
async fn each_failure_is_an_event() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());

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

    let events = capture.0.lock().unwrap();
    assert_eq!(events.len(), 1, "one event for one failure: {events:?}");
    let get = |name: &str| {
        events[0]
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("name").as_deref(), Some("backend"));
    assert_eq!(get("stage").as_deref(), Some("connect"));
    assert_eq!(get("kind").as_deref(), Some("connect_timeout"));
    assert_eq!(get("category").as_deref(), Some("connect"));
    assert!(get("error").unwrap().contains("connect timeout"));
    assert!(get("elapsed_ms").is_some());
}
