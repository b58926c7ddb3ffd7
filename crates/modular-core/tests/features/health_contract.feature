Feature: Health aggregation contract
  Every module reports health; the aggregator checks all providers in parallel with per-check
  timeouts, isolates panics, caches with single-flight refresh, and folds the reports into
  overall health, readiness and liveness. Time is paused: sleeps advance a virtual clock.

  Background:
    Given a health aggregator with a cache TTL of 100 ms

  Scenario: One healthy provider makes health and readiness healthy
    Given a provider "db" that reports healthy
    When health is checked
    Then health is healthy
    And readiness is healthy
    And liveness is healthy
    And the report of "db" is healthy

  Scenario: A healthy and an unhealthy provider make health and readiness unhealthy
    Given a provider "db" that reports healthy
    And a provider "queue" that reports unhealthy
    When health is checked
    Then health is unhealthy
    And readiness is unhealthy
    And the report of "db" is healthy
    And the report of "queue" is unhealthy

  Scenario: An unhealthy optional provider leaves readiness healthy
    Given a provider "db" that reports healthy
    And an optional provider "cache" that reports unhealthy
    When health is checked
    Then health is unhealthy
    And readiness is healthy
    And the report of "cache" is optional

  Scenario: A panicking provider is reported unhealthy and the others are still checked
    Given a provider "db" that reports healthy
    And a provider "broken" that panics with "index out of bounds"
    And a provider "search" that reports degraded
    When health is checked
    Then the report of "broken" is unhealthy with a message containing "panicked: index out of bounds"
    And the report of "db" is healthy
    And the report of "search" is degraded
    And provider "db" was called 1 time
    And provider "search" was called 1 time

  Scenario: A temporary error gives degraded for that provider
    Given a provider "db" that reports healthy
    And a provider "pool" that fails temporarily with "pool exhausted"
    When health is checked
    Then the report of "pool" is degraded with a message containing "pool exhausted"
    And the report of "db" is healthy
    And health is degraded
    And readiness is degraded

  Scenario: A provider that errors is unhealthy
    Given a provider "db" that fails with "connection refused"
    When health is checked
    Then the report of "db" is unhealthy with a message containing "connection refused"

  Scenario: A slow provider times out while the fast one's report is kept
    Given a provider "fast" that reports healthy
    And a provider "slow" that sleeps 5000 ms with a timeout of 200 ms
    When health is checked
    Then the report of "slow" is unhealthy with a message containing "timed out after 200ms"
    And the report of "fast" is healthy
    And the check took at most 205 ms

  Scenario: Two checks within the TTL call the provider once
    Given a provider "db" that reports healthy
    When health is checked
    And 10 ms pass
    And health is checked
    Then provider "db" was called 1 time

  Scenario: A check after the TTL calls the provider again
    Given a provider "db" that reports healthy
    When health is checked
    And 150 ms pass
    And health is checked
    Then provider "db" was called 2 times

  Scenario: Force refresh calls the provider again within the TTL
    Given a provider "db" that reports healthy
    When health is checked
    And 10 ms pass
    And health is force refreshed
    Then provider "db" was called 2 times

  Scenario: Concurrent checks on a cold cache share one evaluation
    Given a provider "db" that sleeps 50 ms with a timeout of 200 ms
    And a provider "cache" that reports healthy
    When 50 checks run concurrently
    Then provider "db" was called 1 time
    And provider "cache" was called 1 time

  Scenario: A healthy-to-unhealthy transition emits one status change per probe and component
    Given a provider "db" that reports healthy
    And health events are observed
    When health is checked
    And provider "db" starts reporting unhealthy
    And health is force refreshed
    Then exactly 1 status-changed event is emitted for probe "health" from healthy to unhealthy
    And exactly 1 status-changed event is emitted for probe "readiness" from healthy to unhealthy
    And exactly 1 status-changed event is emitted for component "db:db" from healthy to unhealthy
    And exactly 3 status-changed events are emitted in total
    And exactly 2 evaluated events are emitted

  Scenario: A steady state emits no status change
    Given a provider "db" that reports healthy
    And health events are observed
    When health is checked
    And health is force refreshed
    And health is force refreshed
    Then exactly 0 status-changed events are emitted in total
    And exactly 3 evaluated events are emitted

  Scenario: The first evaluation is not a change even when unhealthy
    Given a provider "db" that reports unhealthy
    And health events are observed
    When health is checked
    Then exactly 0 status-changed events are emitted in total
    And exactly 1 evaluated events are emitted

  Scenario: An optional provider that errors stays optional
    Given a provider "db" that reports healthy
    And an optional provider "cache" that fails with "connection refused"
    When health is checked
    Then the report of "cache" is unhealthy with a message containing "connection refused"
    And the report of "cache" is optional
    And readiness is healthy
    And health is unhealthy

  Scenario: Readiness turns unhealthy while shutting down
    Given a provider "db" that reports healthy
    When health is checked
    And the application starts shutting down
    Then readiness is unhealthy now
    And provider "db" was called 1 time
