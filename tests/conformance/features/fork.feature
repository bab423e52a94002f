Feature: Fork Task
  As an operations engineer
  I want branches of a document to run at the same time
  So that independent checks do not wait for one another

  Scenario: Fork runs every branch and gives their outputs in order
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: default
      name: fork-all
      version: '1.0.0'
    do:
      - checks:
          fork:
            branches:
              - disk:
                  set:
                    check: disk
              - memory:
                  do:
                    - pause:
                        wait: PT10S
                    - report:
                        set:
                          check: memory
    """
    When the workflow is started
    Then the workflow should be waiting
    When 10 seconds pass
    And the workflow finishes
    Then the workflow should complete with output:
    """yaml
    - check: disk
    - check: memory
    """

  Scenario: With compete the branch that finishes first wins and the others are cancelled
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: default
      name: fork-compete
      version: '1.0.0'
    do:
      - race:
          fork:
            compete: true
            branches:
              - slow:
                  do:
                    - pause:
                        wait: PT1M
                    - late:
                        set:
                          winner: slow
              - fast:
                  set:
                    winner: fast
    """
    When the workflow is started
    And the workflow finishes
    Then the workflow should complete with output:
    """yaml
    winner: fast
    """

  Scenario: A failing branch faults the fork
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: default
      name: fork-fault
      version: '1.0.0'
    do:
      - checks:
          fork:
            branches:
              - ok:
                  set:
                    fine: true
              - broken:
                  raise:
                    error:
                      type: https://serverlessworkflow.io/spec/1.0.0/errors/runtime
                      status: 500
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: runtime
    instance: /do/0/checks/fork/branches/1/broken
    """
