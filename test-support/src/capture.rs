//! A tracing subscriber that records the events of one target, for assertions.

use std::sync::{Arc, Mutex, OnceLock};
use tracing::{
    field::{Field, Visit},
    span, Event, Metadata, Subscriber,
};

/// The fields of one event, as name and printed value.
pub type Fields = Vec<(String, String)>;

/// Records the fields of every event whose target is `target`.
#[derive(Clone)]
pub struct Capture {
    target: &'static str,
    pub events: Arc<Mutex<Vec<Fields>>>,
}

impl Capture {
    pub fn new(target: &'static str) -> Self {
        Capture {
            target,
            events: Arc::default(),
        }
    }

    /// The binary's global capture of `target`, installed as the global default subscriber
    /// on first use (the first target asked for wins).
    ///
    /// A global subscriber, not a thread-local one: with `set_default`, another test thread
    /// that hits a callsite first may cache it as uninteresting, and the event is lost.
    /// Tests running side by side all record here, so a test filters by a field of its own
    /// (see [`Capture::matching`]).
    pub fn global(target: &'static str) -> Self {
        static GLOBAL: OnceLock<Capture> = OnceLock::new();
        GLOBAL
            .get_or_init(|| {
                let capture = Capture::new(target);
                tracing::subscriber::set_global_default(capture.clone())
                    .expect("no other global subscriber in this test binary");
                capture
            })
            .clone()
    }

    /// The events whose `field` has `value`, in order.
    pub fn matching(&self, field: &str, value: &str) -> Vec<Fields> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|event| event.iter().any(|(k, v)| k == field && v == value))
            .cloned()
            .collect()
    }
}

/// The printed value of `name` in one event.
pub fn field(event: &Fields, name: &str) -> Option<String> {
    event
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

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
        if event.metadata().target() != self.target {
            return;
        }
        let mut fields = Vec::new();
        event.record(&mut Visitor(&mut fields));
        self.events.lock().unwrap().push(fields);
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}
