-- Job state and runs (the claim rows) of the scheduler module. Times are epoch milliseconds.
CREATE TABLE IF NOT EXISTS scheduler_jobs (
    name TEXT PRIMARY KEY,
    last_scheduled_at INTEGER,
    next_run_at INTEGER,
    last_run_at INTEGER,
    last_status TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS scheduler_runs (
    job TEXT NOT NULL,
    scheduled_at INTEGER NOT NULL,
    instance TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at INTEGER NOT NULL,
    finished_at INTEGER,
    lease_until INTEGER NOT NULL,
    error TEXT,
    PRIMARY KEY (job, scheduled_at)
);
