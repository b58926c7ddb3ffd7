-- Job state and runs (the claim rows) of the scheduler module. Times are epoch milliseconds.
CREATE TABLE IF NOT EXISTS scheduler_jobs (
    name VARCHAR(191) PRIMARY KEY,
    last_scheduled_at BIGINT,
    next_run_at BIGINT,
    last_run_at BIGINT,
    last_status VARCHAR(32),
    consecutive_failures BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS scheduler_runs (
    job VARCHAR(191) NOT NULL,
    scheduled_at BIGINT NOT NULL,
    instance VARCHAR(191) NOT NULL,
    status VARCHAR(32) NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    lease_until BIGINT NOT NULL,
    error TEXT,
    PRIMARY KEY (job, scheduled_at)
);
