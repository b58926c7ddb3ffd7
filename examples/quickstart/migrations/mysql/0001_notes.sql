-- The notes table on MariaDB and MySQL. Run by the database module on the `primary`
-- connection at start and on every new pool; see examples/quickstart/src/notes.rs.
-- `created_at` is written by the notes module (RFC 3339, UTC, milliseconds), the same text on
-- every driver.
CREATE TABLE IF NOT EXISTS notes (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    text TEXT NOT NULL,
    created_at VARCHAR(32) NOT NULL
) DEFAULT CHARSET = utf8mb4;
