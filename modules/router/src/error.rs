//! [`RouterError`]: why the router could not be built.

/// Why a router could not be built (at start, on reload, or after a route contribution).
///
/// A failed build changes nothing: the previous router keeps serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// Two contributions (or a contribution and a built-in endpoint) claim the same route.
    #[error("route conflict while merging the routes of {owners}: {message}")]
    RouteConflict {
        /// The modules whose routes were being merged.
        owners: String,
        /// axum's description of the conflict.
        message: String,
    },
    /// A toggle names a route path that nothing serves.
    #[error("router.routes.{path} names a route that no module registered (known: {known})")]
    UnknownRoute {
        /// The toggle's path.
        path: String,
        /// The registered paths.
        known: String,
    },
    /// A limit names a route path that no module contributed.
    #[error(
        "router.limits.routes.{path} names a route that no module contributed (known: {known})"
    )]
    UnknownLimitRoute {
        /// The limit's path.
        path: String,
        /// The contributed paths.
        known: String,
    },
    /// A configured value cannot be turned into middleware.
    #[error("router.{path}: {message}")]
    InvalidValue {
        /// The field, relative to the section.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A middleware layer panicked while it was applied (a setting it asserts on that
    /// validation did not catch).
    #[error("router: building the middleware stack panicked: {message}")]
    StackPanicked {
        /// The panic's message.
        message: String,
    },
    /// Reading configuration failed.
    #[error(transparent)]
    Config(#[from] modular_core::Error),
    /// The reload context carried no `router` section.
    #[error("the reload carried no router section")]
    MissingSection,
}
