//! [`Driver`]: which sqlx driver a connection URL selects.

use std::fmt;

use serde::Serialize;

use crate::DatabaseError;

/// The database driver behind a connection, chosen by the URL's scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Driver {
    /// PostgreSQL: `postgres://` or `postgresql://` (cargo feature `postgres`).
    #[serde(rename = "postgres")]
    Postgres,
    /// MySQL or MariaDB: `mysql://` or `mariadb://` (cargo feature `mysql`).
    #[serde(rename = "mysql")]
    MySql,
    /// SQLite: `sqlite:` (cargo feature `sqlite`, on by default).
    #[serde(rename = "sqlite")]
    Sqlite,
}

impl Driver {
    /// The driver a URL's scheme selects. Only the scheme is ever echoed in the error: the rest
    /// of the URL may hold credentials.
    pub fn from_url(url: &str) -> Result<Self, DatabaseError> {
        if url.trim().is_empty() {
            return Err(DatabaseError::MissingUrl);
        }
        let scheme = url
            .split_once(':')
            .map(|(scheme, _)| scheme)
            .unwrap_or_default();
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Ok(Self::Postgres),
            "mysql" | "mariadb" => Ok(Self::MySql),
            "sqlite" => Ok(Self::Sqlite),
            _ => Err(DatabaseError::UnknownScheme {
                scheme: scheme.chars().take(32).collect(),
            }),
        }
    }

    /// `postgres`, `mysql` or `sqlite`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::MySql => "mysql",
            Self::Sqlite => "sqlite",
        }
    }

    /// The cargo feature of modular-database that compiles this driver in.
    pub fn feature(self) -> &'static str {
        self.as_str()
    }

    /// Whether this build includes the driver.
    pub fn is_enabled(self) -> bool {
        match self {
            Self::Postgres => cfg!(feature = "postgres"),
            Self::MySql => cfg!(feature = "mysql"),
            Self::Sqlite => cfg!(feature = "sqlite"),
        }
    }

    /// Checks that the driver is compiled in and that the driver can parse `url`.
    pub(crate) fn check_url(self, url: &str) -> Result<(), String> {
        if !self.is_enabled() {
            return Err(format!(
                "driver `{self}` is not enabled in this build (turn on the `{}` feature of modular-database)",
                self.feature()
            ));
        }
        crate::pool::parse_options(self, url, None)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_select_drivers() {
        assert_eq!(
            Driver::from_url("postgres://u@h/db").ok(),
            Some(Driver::Postgres)
        );
        assert_eq!(
            Driver::from_url("PostgreSQL://u@h/db").ok(),
            Some(Driver::Postgres)
        );
        assert_eq!(
            Driver::from_url("mysql://root@h/db").ok(),
            Some(Driver::MySql)
        );
        assert_eq!(
            Driver::from_url("mariadb://root@h/db").ok(),
            Some(Driver::MySql)
        );
        assert_eq!(
            Driver::from_url("sqlite::memory:").ok(),
            Some(Driver::Sqlite)
        );
        assert_eq!(
            Driver::from_url("sqlite://data/app.db").ok(),
            Some(Driver::Sqlite)
        );
    }

    #[test]
    fn an_unknown_scheme_names_only_the_scheme() {
        let error = Driver::from_url("mssql://sa:hunter2@h/db")
            .err()
            .map(|e| e.to_string());
        let text = error.unwrap_or_default();
        assert!(text.contains("`mssql`"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn drivers_serialize_as_their_short_names() {
        for driver in [Driver::Postgres, Driver::MySql, Driver::Sqlite] {
            assert_eq!(
                serde_json::to_value(driver).ok(),
                Some(serde_json::Value::from(driver.as_str()))
            );
        }
    }

    #[test]
    fn an_empty_url_is_missing() {
        assert!(matches!(
            Driver::from_url("  "),
            Err(DatabaseError::MissingUrl)
        ));
    }
}
