//! The CloudEvents the database module emits, all from `/modular/modules/database`.

/// A new pool connected (and ran its migrations, if any) and now serves: at start, for an
/// added connection, or as the replacement a reload built. Data: `connection`, `driver`, `generation`,
/// `max_connections`, `min_connections`, `reason` (`start`, `added`, `replaced`).
pub const CONNECTION_OPENED: &str = "com.modular.database.connection.opened";
/// A pool could not connect (the start or the reload fails). Data: `connection`, `driver`,
/// `error`, `reason`.
pub const CONNECTION_FAILED: &str = "com.modular.database.connection.failed";
/// A pool finished closing after it was replaced or removed, or at shutdown. Data:
/// `connection`, `driver`, `generation`, `reason` (`replaced`, `removed`, `shutdown`).
pub const CONNECTION_CLOSED: &str = "com.modular.database.connection.closed";
/// A reload swapped a connection's pool. Data: `connection`, `driver`, `generation`
/// (the new one), `changed` (field names), `max_connections`, `min_connections`, `rollback`.
pub const POOL_SWAPPED: &str = "com.modular.database.pool.swapped";
/// One migration was applied. Data: `connection`, `version`, `description`, `duration_ms`.
pub const MIGRATION_APPLIED: &str = "com.modular.database.migration.applied";

/// The `<noun>.<verb>` part that `ModuleContext::emit` expects.
pub(crate) fn noun_verb(ty: &'static str) -> &'static str {
    ty.strip_prefix("com.modular.database.").unwrap_or(ty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noun_verb_strips_the_module_prefix() {
        assert_eq!(noun_verb(POOL_SWAPPED), "pool.swapped");
        assert_eq!(noun_verb(MIGRATION_APPLIED), "migration.applied");
    }
}
