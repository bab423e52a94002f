Feature: Run Task
  As an operations engineer
  I want a document to run commands and scripts on the worker
  So that existing runbook scripts become durable steps

  Scenario: A shell command gets its arguments, environment and stdin
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: default
      name: run-shell
      version: '1.0.0'
    do:
      - inspect:
          run:
            shell:
              command: 'read line; echo "$line $1 $SERVICE"'
              arguments:
                - ${ .host }
              environment:
                SERVICE: ${ .service }
              stdin: checking
            return: all
    """
    And given the workflow input is:
    """yaml
    host: web-1
    service: api
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    code: 0
    stdout: "checking web-1 api\n"
    stderr: ""
    """

  Scenario: A failing command faults the task unless its code is asked for
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: default
      name: run-shell-fail
      version: '1.0.0'
    do:
      - probe:
          run:
            shell:
              command: 'echo down >&2; exit 3'
            return: code
          output:
            as: '${ { probe: . } }'
      - enforce:
          run:
            shell:
              command: 'echo still down >&2; exit 3'
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: runtime
    status: 500
    instance: /do/1/enforce
    """
    And the workflow error detail should contain 'still down'

  Scenario: A command that outlives its task timeout is stopped
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: default
      name: run-shell-timeout
      version: '1.0.0'
    do:
      - hang:
          run:
            shell:
              command: sleep 30
          timeout:
            after:
              milliseconds: 300
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: timeout
    status: 408
    instance: /do/0/hang
    """

  Scenario: A python script reads its arguments and the task input
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: default
      name: run-python
      version: '1.0.0'
    do:
      - compute:
          run:
            script:
              language: python
              arguments:
                - ${ .replicas | tostring }
              code: |
                import sys
                print(int(sys.argv[1]) * 2, end="")
          output:
            as: '${ { replicas: tonumber } }'
    """
    And given the workflow input is:
    """yaml
    replicas: 3
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    replicas: 6
    """
