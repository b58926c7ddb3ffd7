//! Request modifiers: named hooks that change every request before it is sent.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use reqwest::Request;

/// A hook that changes a request before it is sent: adds a header, signs it, rewrites its URL.
///
/// Any `Fn(&mut reqwest::Request) + Send + Sync` is one:
///
/// ```
/// use reqwest::header::HeaderValue;
/// use modular_httpclient::{HttpClient, HttpClientConfig};
///
/// # fn main() -> Result<(), modular_httpclient::HttpClientError> {
/// # modular_core::install_default_crypto_provider();
/// let client = HttpClient::new(HttpClientConfig::default())?;
/// client.add_modifier("tenant", |request: &mut reqwest::Request| {
///     request.headers_mut().insert("x-tenant", HeaderValue::from_static("acme"));
/// });
/// assert_eq!(client.modifier_names(), ["tenant"]);
/// assert!(client.remove_modifier("tenant"));
/// # Ok(())
/// # }
/// ```
///
/// Modifiers run once per request, before the first attempt, in the order they were added
/// (replacing a modifier keeps its place), so a retry resends exactly what the first attempt
/// sent. A panicking modifier fails the request it was modifying, by panicking in its task.
pub trait RequestModifier: Send + Sync + 'static {
    /// Changes `request`.
    fn modify(&self, request: &mut Request);
}

impl<F> RequestModifier for F
where
    F: Fn(&mut Request) + Send + Sync + 'static,
{
    fn modify(&self, request: &mut Request) {
        self(request);
    }
}

#[derive(Clone)]
struct Named {
    name: Arc<str>,
    modifier: Arc<dyn RequestModifier>,
}

/// The modifiers of one client, replaced whole on every change so a request that is applying
/// them never sees a half-updated list.
#[derive(Default)]
pub(crate) struct Modifiers {
    list: ArcSwap<Vec<Named>>,
}

impl Modifiers {
    /// Adds `modifier` under `name`, replacing (in place) and returning an earlier one.
    pub(crate) fn add(
        &self,
        name: &str,
        modifier: Arc<dyn RequestModifier>,
    ) -> Option<Arc<dyn RequestModifier>> {
        let previous = self.list.rcu(|current| {
            let mut next: Vec<Named> = current.as_ref().clone();
            let entry = Named {
                name: Arc::from(name),
                modifier: Arc::clone(&modifier),
            };
            match next.iter_mut().find(|n| &*n.name == name) {
                Some(slot) => *slot = entry,
                None => next.push(entry),
            }
            next
        });
        previous
            .iter()
            .find(|n| &*n.name == name)
            .map(|n| Arc::clone(&n.modifier))
    }

    /// Removes the modifier named `name`; whether there was one.
    pub(crate) fn remove(&self, name: &str) -> bool {
        let previous = self.list.rcu(|current| {
            current
                .iter()
                .filter(|n| &*n.name != name)
                .cloned()
                .collect::<Vec<_>>()
        });
        previous.iter().any(|n| &*n.name == name)
    }

    /// The names, in the order the modifiers run.
    pub(crate) fn names(&self) -> Vec<String> {
        self.list
            .load()
            .iter()
            .map(|n| n.name.to_string())
            .collect()
    }

    /// Runs every modifier on `request`, in order.
    pub(crate) fn apply(&self, request: &mut Request) {
        let list = self.list.load();
        for named in list.iter() {
            named.modifier.modify(request);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.list.load().len()
    }
}

impl fmt::Debug for Modifiers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::Method;
    use reqwest::header::HeaderValue;

    fn tag(value: &'static str) -> Arc<dyn RequestModifier> {
        Arc::new(move |request: &mut Request| {
            request
                .headers_mut()
                .append("x-tag", HeaderValue::from_static(value));
        })
    }

    fn tags(modifiers: &Modifiers) -> Vec<String> {
        let mut request = Request::new(Method::GET, "http://127.0.0.1/".parse().unwrap());
        modifiers.apply(&mut request);
        request
            .headers()
            .get_all("x-tag")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn modifiers_run_in_insertion_order_and_replacement_keeps_the_place() {
        let modifiers = Modifiers::default();
        assert!(modifiers.add("a", tag("a1")).is_none());
        assert!(modifiers.add("b", tag("b1")).is_none());
        assert_eq!(tags(&modifiers), ["a1", "b1"]);
        assert!(modifiers.add("a", tag("a2")).is_some());
        assert_eq!(tags(&modifiers), ["a2", "b1"]);
        assert_eq!(modifiers.names(), ["a", "b"]);
    }

    #[test]
    fn a_removed_modifier_no_longer_runs() {
        let modifiers = Modifiers::default();
        modifiers.add("a", tag("a"));
        modifiers.add("b", tag("b"));
        assert!(modifiers.remove("a"));
        assert!(!modifiers.remove("a"));
        assert_eq!(tags(&modifiers), ["b"]);
        assert_eq!(modifiers.len(), 1);
    }
}
