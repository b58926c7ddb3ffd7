//! CloudEvents 1.0 on an in-process bus.
//!
//! Every framework event is a [`cloudevents::Event`] with a UUIDv7 id and JSON data with
//! snake_case keys. Publishing never blocks: each observer owns a bounded queue, and an event
//! that does not fit is dropped for that observer only, counted, and logged.

mod bus;
pub mod types;

pub use bus::{DEFAULT_OBSERVER_CAPACITY, EventBus, EventFilter, EventStream, build_event};
pub use cloudevents::{AttributesReader, Event};

/// Reads an event's JSON data, if it carries any.
pub fn event_data(event: &Event) -> Option<&serde_json::Value> {
    match event.data()? {
        cloudevents::Data::Json(value) => Some(value),
        _ => None,
    }
}
