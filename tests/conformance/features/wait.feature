Feature: Wait Task
  As an operations engineer
  I want a document to pause for a while without holding a worker
  So that long waits cost nothing and survive restarts

  Scenario: Wait parks the run until its timer fires
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: default
      name: wait-then-set
      version: '1.0.0'
    do:
      - before:
          set:
            phase: waiting
      - pause:
          wait:
            minutes: 5
      - after:
          set:
            phase: ${ .phase + "-done" }
    """
    When the workflow is started
    Then the workflow should be waiting
    When 299 seconds pass
    Then the workflow should be waiting
    When 1 seconds pass
    And the workflow finishes
    Then the workflow should complete with output:
    """yaml
    phase: waiting-done
    """
    And before should run first
    And after should run last

  Scenario: Wait takes an ISO 8601 duration computed by an expression
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: default
      name: wait-expression
      version: '1.0.0'
    do:
      - pause:
          wait: ${ "PT\(.seconds)S" }
    """
    And given the workflow input is:
    """yaml
    seconds: 90
    """
    When the workflow is started
    Then the workflow should be waiting
    When 90 seconds pass
    And the workflow finishes
    Then the workflow should complete with output:
    """yaml
    seconds: 90
    """
