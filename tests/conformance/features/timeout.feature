Feature: Task and Workflow Timeouts
  As an operations engineer
  I want tasks and whole documents to give up after a deadline
  So that a stuck remediation fails loudly instead of hanging

  Scenario: A task timeout ends a long wait with a timeout error
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: default
      name: task-timeout
      version: '1.0.0'
    do:
      - pause:
          wait:
            hours: 1
          timeout:
            after:
              seconds: 10
    """
    When the workflow is started
    Then the workflow should be waiting
    When 10 seconds pass
    And the workflow finishes
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout
    status: 408
    instance: /do/0/pause
    """

  Scenario: A timed out task can be caught
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: default
      name: catch-timeout
      version: '1.0.0'
    use:
      timeouts:
        short:
          after: PT30S
    do:
      - guarded:
          try:
            - pause:
                wait: PT1H
                timeout: short
          catch:
            errors:
              with:
                type: timeout
            do:
              - fallback:
                  set:
                    outcome: gave up
    """
    When the workflow is started
    Then the workflow should be waiting
    When 30 seconds pass
    And the workflow finishes
    Then the workflow should complete with output:
    """yaml
    outcome: gave up
    """

  Scenario: A workflow timeout faults the document
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: default
      name: workflow-timeout
      version: '1.0.0'
    timeout:
      after:
        minutes: 1
    do:
      - first:
          wait:
            seconds: 40
      - second:
          wait:
            seconds: 40
      - never:
          set:
            reached: true
    """
    When the workflow is started
    Then the workflow should be waiting
    When 40 seconds pass
    Then the workflow should be waiting
    When 20 seconds pass
    And the workflow finishes
    Then the workflow should fault with error:
    """yaml
    type: https://serverlessworkflow.io/spec/1.0.0/errors/timeout
    status: 408
    instance: /
    """

  Scenario: A runaway expression fails its task with a timeout error
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: default
      name: runaway-expression
      version: '1.0.0'
    do:
      - explode:
          set:
            huge: ${ [range(1e12)] | length }
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: timeout
    status: 408
    instance: /do/0/explode
    """
    And the workflow error detail should contain 'expression took longer than 2 s'
