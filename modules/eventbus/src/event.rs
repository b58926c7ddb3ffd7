//! Building CloudEvents 1.0 events: from a serializable payload, and completing the required
//! attributes (`time`, `datacontenttype`) of an event a caller built.

use cloudevents::event::{Data, ExtensionValue};
use cloudevents::{
    AttributesReader as _, AttributesWriter as _, Event, EventBuilder as _, EventBuilderV10,
};
use serde::Serialize;

use crate::error::EventbusError;

/// An event of type `ty` from `source` with `data` as JSON, a UUIDv7 id and the current time.
pub fn wrap<T: Serialize + ?Sized>(
    ty: &str,
    source: &str,
    data: &T,
) -> Result<Event, EventbusError> {
    let data = serde_json::to_value(data).map_err(|e| EventbusError::Encode(e.to_string()))?;
    EventBuilderV10::new()
        .id(uuid::Uuid::now_v7().to_string())
        .ty(ty)
        .source(source)
        .time(chrono::Utc::now())
        .data("application/json", data)
        .build()
        .map_err(|e| EventbusError::Encode(e.to_string()))
}

/// Gives `event` a `time` and a `datacontenttype` when it lacks them, so every event on the
/// bus carries id, source, type, time and datacontenttype.
pub(crate) fn complete(event: &mut Event) {
    if event.time().is_none() {
        event.set_time(Some(chrono::Utc::now()));
    }
    if event.datacontenttype().is_none() {
        let ty = match event.data() {
            Some(Data::String(_)) => "text/plain",
            Some(Data::Binary(_)) => "application/octet-stream",
            _ => "application/json",
        };
        event.set_datacontenttype(Some(ty));
    }
}

/// The event the health probe sends.
pub(crate) fn probe_event(topic: &str) -> Event {
    EventBuilderV10::new()
        .id(uuid::Uuid::now_v7().to_string())
        .ty("com.modular.eventbus.probe.sent")
        .source(crate::config::DEFAULT_SOURCE)
        .subject(topic)
        .time(chrono::Utc::now())
        .data("application/json", serde_json::json!({}))
        .build()
        .unwrap_or_default()
}

/// The dead-lettered copy of `event`: the same event with extension attributes saying where it
/// came from and why it failed.
pub(crate) fn dead_lettered(event: &Event, topic: &str, attempts: u32, reason: &str) -> Event {
    let mut copy = event.clone();
    copy.set_extension("deadlettertopic", ExtensionValue::String(topic.to_owned()));
    copy.set_extension(
        "deadletterattempts",
        ExtensionValue::Integer(i64::from(attempts)),
    );
    copy.set_extension(
        "deadletterreason",
        ExtensionValue::String(reason.to_owned()),
    );
    copy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_payloads_carry_every_required_attribute() {
        let event = wrap(
            "com.example.order.created",
            "/shop",
            &serde_json::json!({"id": 1}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(event.ty(), "com.example.order.created");
        assert!(event.time().is_some());
        assert_eq!(event.datacontenttype(), Some("application/json"));
        assert!(!event.id().is_empty());
    }

    #[test]
    fn an_event_without_time_or_content_type_is_completed() {
        let mut event = EventBuilderV10::new()
            .id("1")
            .ty("t")
            .source("/s")
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        complete(&mut event);
        assert!(event.time().is_some());
        assert_eq!(event.datacontenttype(), Some("application/json"));
    }
}
