Feature: Reload contract
  Every reload trigger runs one pipeline: modules receive only their own changes and prepare
  their new state aside; only when every module has prepared are they all committed; a failure
  drops every prepared state, so nothing needs rolling back; repeated failures open a circuit
  breaker, and concurrent requests are coalesced without overlapping.

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

  Scenario: When the second of three modules fails to prepare, the first's prepared state is dropped
    Given modules "alpha, beta, gamma" that reload successfully
    And module "beta" fails to reload
    When the level of "alpha, beta, gamma" changes to 5
    And a reload is requested
    Then the reload status is "failed"
    And module "alpha" was aborted and never committed
    And no module was rolled back
    And module "gamma" received no call
    And the running config version is unchanged
    And a "com.modular.config.reload.failed" event names failed module "beta"

  Scenario: A module that applies in place is undone with exactly the inverse changes
    Given modules "alpha, beta" that reload successfully
    And module "alpha" applies in place
    And module "beta" fails to reload
    When the level of "alpha, beta" changes to 5
    And a reload is requested
    Then the reload status is "failed"
    And module "alpha" was rolled back with exactly the inverse changes

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

  Scenario: Sixteen concurrent requests on a multi-thread runtime never overlap
    Given 4 modules that yield while preparing, on a multi-thread runtime
    When 16 reloads are requested concurrently with new levels
    Then all 16 requests received an outcome
    And reload calls never overlapped
