Feature: Reload contract
  Every reload trigger runs one pipeline: modules receive only their own changes, failures
  roll back what was applied, repeated failures open a circuit breaker, and concurrent
  requests are coalesced without overlapping.

  Scenario: Three modules all receive their changes
    Given modules "alpha, beta, gamma" that reload successfully
    When the level of "alpha, beta, gamma" changes to 5
    And a reload is requested
    Then the reload status is "applied"
    And modules "alpha, beta, gamma" each received 1 change to "level"
    And a "com.modular.config.reload.completed" event names modules "alpha, beta, gamma"

  Scenario: A module that cannot reload is skipped and the others still reload
    Given modules "alpha, beta, gamma" that reload successfully
    And module "beta" cannot reload now
    When the level of "alpha, beta, gamma" changes to 5
    And a reload is requested
    Then the reload status is "applied"
    And the outcome skipped "beta"
    And modules "alpha, gamma" each received 1 change to "level"
    And module "beta" received no call

  Scenario: When the second of three modules fails, the first is rolled back
    Given modules "alpha, beta, gamma" that reload successfully
    And module "beta" fails to reload
    When the level of "alpha, beta, gamma" changes to 5
    And a reload is requested
    Then the reload status is "failed"
    And module "alpha" was rolled back with exactly the inverse changes
    And module "gamma" received no call
    And a "com.modular.config.reload.failed" event names failed module "beta"

  Scenario: Three consecutive failures open the circuit breaker until a trial succeeds
    Given modules "alpha" that reload successfully
    And module "alpha" fails to reload
    When 3 reloads with new levels fail
    Then a "com.modular.config.reload.circuit.opened" event was emitted
    When the level of "alpha" changes to 50
    And a reload is requested
    Then the reload status is "circuit_open" with a retry_after
    Given module "alpha" reloads successfully again
    When the backoff has passed
    And a reload is requested
    Then the reload status is "applied"
    And a "com.modular.config.reload.circuit.closed" event was emitted

  Scenario: An empty diff is a noop that calls no module
    Given modules "alpha, beta" that reload successfully
    When a reload is requested
    Then the reload status is "noop"
    And module "alpha" received no call
    And module "beta" received no call
    And a "com.modular.config.reload.noop" event was emitted

  Scenario: Ten concurrent requests are coalesced and never overlap
    Given slow modules "alpha" that take 50 ms to reload
    When 10 reloads are requested concurrently with new levels
    Then all 10 requests received an outcome
    And reload calls never overlapped
    And at most 2 reloads ran
