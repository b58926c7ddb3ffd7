//! CloudEvents binary content mode: the attributes as transport headers (`cloudEvents_<name>`
//! on AMQP as its binding spells them, `ce-<name>` on NATS, `ce_<name>` fields on Redis; all
//! three are read everywhere), `datacontenttype` as the transport's content type, and the data
//! as the body.
//! Engines whose transport has headers (NATS headers, AMQP message properties, Redis stream
//! entry fields) use it when `mode: binary`; MQTT 3.1.1 has no headers and refuses it.

#![cfg_attr(
    not(any(feature = "redis", feature = "nats", feature = "amqp")),
    allow(dead_code)
)]

use cloudevents::event::{Data, SpecVersion};
use cloudevents::message::{
    BinaryDeserializer, BinarySerializer, MessageAttributeValue, Result as MessageResult,
};
use cloudevents::{AttributesReader as _, Event};

use crate::error::EventbusError;

/// The content type a structured-mode message carries.
pub(crate) const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json";
/// Header prefixes binary mode reads.
const PREFIXES: [&str; 3] = ["ce_", "ce-", "cloudEvents_"];

/// What a binary-mode message is made of.
pub(crate) struct BinaryMessage {
    /// `(ce_<attribute>, value)` for every attribute and extension but `datacontenttype`.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
}

struct Collector(BinaryMessage, &'static str);

impl BinarySerializer<BinaryMessage> for Collector {
    fn set_spec_version(mut self, spec_version: SpecVersion) -> MessageResult<Self> {
        self.0
            .headers
            .push((format!("{}specversion", self.1), spec_version.to_string()));
        Ok(self)
    }

    fn set_attribute(mut self, name: &str, value: MessageAttributeValue) -> MessageResult<Self> {
        if name == "datacontenttype" {
            self.0.content_type = Some(value.to_string());
        } else if name != "specversion" {
            self.0
                .headers
                .push((format!("{}{name}", self.1), value.to_string()));
        }
        Ok(self)
    }

    fn set_extension(mut self, name: &str, value: MessageAttributeValue) -> MessageResult<Self> {
        self.0
            .headers
            .push((format!("{}{name}", self.1), value.to_string()));
        Ok(self)
    }

    fn end_with_data(mut self, bytes: Vec<u8>) -> MessageResult<BinaryMessage> {
        self.0.body = bytes;
        Ok(self.0)
    }

    fn end(self) -> MessageResult<BinaryMessage> {
        Ok(self.0)
    }
}

/// `event` as headers named `<prefix><attribute>`, content type and body.
pub(crate) fn to_binary(
    event: &Event,
    prefix: &'static str,
) -> Result<BinaryMessage, EventbusError> {
    event
        .clone()
        .deserialize_binary(Collector(
            BinaryMessage {
                headers: Vec::new(),
                content_type: None,
                body: Vec::new(),
            },
            prefix,
        ))
        .map_err(|e| EventbusError::Encode(e.to_string()))
}

/// `event` on the wire in `mode`: structured is the JSON body (content type
/// `application/cloudevents+json`) and no headers.
pub(crate) fn encode(
    event: &Event,
    mode: crate::config::WireMode,
    prefix: &'static str,
) -> Result<BinaryMessage, EventbusError> {
    match mode {
        crate::config::WireMode::Structured => Ok(BinaryMessage {
            headers: Vec::new(),
            content_type: Some(STRUCTURED_CONTENT_TYPE.to_owned()),
            body: crate::engine::encode(event)?,
        }),
        crate::config::WireMode::Binary => to_binary(event, prefix),
    }
}

/// The event of a message in either mode: binary when the headers carry `specversion`.
#[cfg_attr(not(any(feature = "nats", feature = "amqp")), allow(dead_code))]
pub(crate) fn decode(
    headers: &[(String, String)],
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Event, String> {
    if is_binary(headers) {
        from_binary(headers, content_type, body)
    } else {
        crate::engine::decode(body)
    }
}

fn attribute_name(header: &str) -> Option<&str> {
    PREFIXES
        .iter()
        .find_map(|p| header.strip_prefix(p))
        .filter(|n| !n.is_empty())
}

/// Whether `headers` carry a binary-mode event (a `ce_specversion` header).
pub(crate) fn is_binary(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(k, _)| attribute_name(k) == Some("specversion"))
}

struct Headers<'a> {
    headers: &'a [(String, String)],
    content_type: Option<&'a str>,
    body: &'a [u8],
}

const SPEC_ATTRIBUTES: [&str; 8] = [
    "id",
    "source",
    "type",
    "subject",
    "time",
    "dataschema",
    "datacontenttype",
    "specversion",
];

impl BinaryDeserializer for Headers<'_> {
    fn deserialize_binary<R: Sized, V: BinarySerializer<R>>(
        self,
        serializer: V,
    ) -> MessageResult<R> {
        let mut serializer = serializer.set_spec_version(SpecVersion::V10)?;
        if let Some(content_type) = self.content_type {
            serializer = serializer.set_attribute(
                "datacontenttype",
                MessageAttributeValue::String(content_type.to_owned()),
            )?;
        }
        for (key, value) in self.headers {
            let Some(name) = attribute_name(key) else {
                continue;
            };
            let value = MessageAttributeValue::String(value.clone());
            serializer = match name {
                "specversion" | "datacontenttype" => serializer,
                name if SPEC_ATTRIBUTES.contains(&name) => serializer.set_attribute(name, value)?,
                name => serializer.set_extension(name, value)?,
            };
        }
        if self.body.is_empty() {
            serializer.end()
        } else {
            serializer.end_with_data(self.body.to_vec())
        }
    }
}

/// The event of a binary-mode message; JSON data (by its content type) is parsed back to JSON.
/// Extension values come back as strings (headers carry no type).
pub(crate) fn from_binary(
    headers: &[(String, String)],
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Event, String> {
    if let Some((_, version)) = headers
        .iter()
        .find(|(k, _)| attribute_name(k) == Some("specversion"))
        && version != "1.0"
    {
        return Err(format!("specversion `{version}` is not 1.0"));
    }
    let mut event = Headers {
        headers,
        content_type,
        body,
    }
    .into_event()
    .map_err(|e| e.to_string())?;
    let json = event
        .datacontenttype()
        .is_some_and(|t| t == "application/json" || t.ends_with("+json"));
    if json && let Some(Data::Binary(bytes)) = event.data() {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("json data: {e}"))?;
        let content_type = event.datacontenttype().map(str::to_owned);
        event.set_data(content_type.unwrap_or_default(), value);
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_survives_binary_mode() {
        let mut event =
            crate::event::wrap("com.example.t", "/s", &serde_json::json!({"a": [1, 2]}))
                .unwrap_or_else(|e| panic!("{e}"));
        cloudevents::AttributesWriter::set_subject(&mut event, Some("sub"));
        let message = to_binary(&event, "ce_").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(message.content_type.as_deref(), Some("application/json"));
        assert!(
            message
                .headers
                .iter()
                .any(|(k, v)| k == "ce_type" && v == "com.example.t")
        );
        assert!(is_binary(&message.headers));
        let back = from_binary(
            &message.headers,
            message.content_type.as_deref(),
            &message.body,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, event);
    }
}
