Feature: Subflows
  As an operations engineer
  I want a document to run another deployed document
  So that common procedures are written once

  Scenario: run workflow starts a deployed document as a child run
    Given a deployed workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: ops
      name: greet
      version: '1.0.0'
    do:
      - greet:
          set:
            greeting: ${ "hello " + .name }
    """
    And a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: ops
      name: parent
      version: '1.0.0'
    do:
      - callChild:
          run:
            workflow:
              namespace: ops
              name: greet
              version: '1.0.0'
              input:
                name: ${ .user }
    """
    And given the workflow input is:
    """yaml
    user: ada
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    greeting: hello ada
    """

  Scenario: A failing subflow faults its parent task
    Given a deployed workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: ops
      name: broken
      version: '2.0.0'
    do:
      - fail:
          raise:
            error:
              type: https://serverlessworkflow.io/spec/1.0.0/errors/runtime
              status: 500
              title: Child broke
    """
    And a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: ops
      name: parent-of-broken
      version: '1.0.0'
    do:
      - callChild:
          run:
            workflow:
              namespace: ops
              name: broken
              version: '2.0.0'
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: runtime
    instance: /do/0/callChild
    """
    And the workflow error detail should contain 'Child broke'
