//! How the request trace classifies answers: a server error is logged at ERROR, except a
//! health probe's `503`, which is the probe doing its job during an outage (an orchestrator
//! polls it every few seconds, and an ERROR line per poll would bury the real errors). Those
//! are logged with every other answer, at DEBUG.

use http::{Request, Response, StatusCode};
use tower_http::classify::{
    ClassifiedResponse, ClassifyResponse, MakeClassifier, NeverClassifyEos, ServerErrorsAsFailures,
    ServerErrorsFailureClass,
};

/// Whether `path` is a health endpoint (DESIGN.md §3.7), whose `503` is an answer, not a
/// failure.
pub(crate) fn is_probe_path(path: &str) -> bool {
    matches!(path, "/health" | "/readyz" | "/livez" | "/startupz") || path.starts_with("/health/")
}

/// Classifies server errors as failures, except a probe's `503`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ProbeAwareClassifier;

/// One request's classifier: whether the request was a probe.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Classify {
    probe: bool,
}

impl MakeClassifier for ProbeAwareClassifier {
    type Classifier = Classify;
    type FailureClass = ServerErrorsFailureClass;
    type ClassifyEos = NeverClassifyEos<ServerErrorsFailureClass>;

    fn make_classifier<B>(&self, request: &Request<B>) -> Classify {
        Classify {
            probe: is_probe_path(request.uri().path()),
        }
    }
}

impl ClassifyResponse for Classify {
    type FailureClass = ServerErrorsFailureClass;
    type ClassifyEos = NeverClassifyEos<ServerErrorsFailureClass>;

    fn classify_response<B>(
        self,
        response: &Response<B>,
    ) -> ClassifiedResponse<Self::FailureClass, Self::ClassifyEos> {
        if self.probe && response.status() == StatusCode::SERVICE_UNAVAILABLE {
            return ClassifiedResponse::Ready(Ok(()));
        }
        ServerErrorsAsFailures::new().classify_response(response)
    }

    fn classify_error<E>(self, error: &E) -> Self::FailureClass
    where
        E: std::fmt::Display + 'static,
    {
        ServerErrorsAsFailures::new().classify_error(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_paths_are_the_health_endpoints_only() {
        for path in [
            "/health",
            "/health/ready",
            "/health/checks/db",
            "/readyz",
            "/livez",
        ] {
            assert!(is_probe_path(path), "{path}");
        }
        for path in ["/healthz-ish", "/greet", "/admin/reload", "/"] {
            assert!(!is_probe_path(path), "{path}");
        }
    }
}
