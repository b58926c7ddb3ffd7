//! Forwarding: the framework's own CloudEvents (reload, health, module lifecycle), as the core
//! bus carries them, republished unchanged to `forward.topic` for other services to watch.

use cloudevents::AttributesReader as _;
use modular_core::events::EventStream;

use crate::service::MessageBus;

/// Runs until the bus stops. The forwarder reads `forward` from the running config at each
/// event, so a reload turns forwarding on, off or elsewhere at once. A failed publish is
/// logged; the core bus's bounded queue means a stuck broker drops (counted) rather than
/// blocks the framework.
pub(crate) fn spawn(bus: MessageBus, mut events: EventStream) {
    let cancel = bus.cancellation().clone();
    let tasks = bus.tasks().clone();
    tasks.spawn(async move {
        loop {
            let event = tokio::select! {
                event = events.recv() => match event { Some(e) => e, None => break },
                () = cancel.cancelled() => break,
            };
            let config = bus.config();
            let Some(forward) = config.forward.as_ref() else { continue };
            if !forward.forwards(event.ty()) {
                continue;
            }
            if let Err(error) = bus.publish(&forward.topic, event).await {
                tracing::warn!(module = "eventbus", topic = %forward.topic, %error, "framework event not forwarded");
            }
        }
    });
}
