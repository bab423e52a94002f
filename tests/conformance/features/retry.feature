Feature: Retries with Backoff
  As an operations engineer
  I want failed calls retried with growing, durable delays
  So that a flapping dependency does not fail the remediation

  Scenario: Exponential backoff retries until the call succeeds
    Given a catalog function flaky:1.0.0 that fails 2 times with status 503
    And a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: default
      name: retry-exponential
      version: '1.0.0'
    do:
      - guarded:
          try:
            - callFlaky:
                call: flaky:1.0.0@default
          catch:
            errors:
              with:
                type: communication
                status: 503
            retry:
              delay:
                seconds: 2
              backoff:
                exponential: {}
              limit:
                attempt:
                  count: 5
    """
    When the workflow is started
    Then the workflow should be waiting
    When 2 seconds pass
    Then the workflow should be waiting
    When 4 seconds pass
    And the workflow finishes
    Then the workflow should complete with output:
    """yaml
    attempts: 3
    """

  Scenario: A reusable retry policy gives up after its attempt count
    Given a catalog function flaky:1.0.0 that fails 5 times with status 503
    And a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: default
      name: retry-exhausted
      version: '1.0.0'
    use:
      retries:
        twice:
          delay: PT1S
          backoff:
            constant: {}
          limit:
            attempt:
              count: 2
    do:
      - guarded:
          try:
            - callFlaky:
                call: flaky:1.0.0@default
          catch:
            errors:
              with:
                type: https://serverlessworkflow.io/spec/1.0.0/errors/communication
            retry: twice
    """
    When the workflow is started
    Then the workflow should be waiting
    When 1 seconds pass
    And the workflow finishes
    Then the workflow should fault with error:
    """yaml
    type: communication
    status: 503
    """
    And the catalog function flaky should have run 2 times

  Scenario: A catch filter with when leaves other errors alone
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: default
      name: catch-when
      version: '1.0.0'
    do:
      - guarded:
          try:
            - fail:
                raise:
                  error:
                    type: https://serverlessworkflow.io/spec/1.0.0/errors/runtime
                    status: 500
                    title: Boom
          catch:
            as: failure
            when: ${ $failure.status == 404 }
            do:
              - recover:
                  set:
                    recovered: true
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: runtime
    status: 500
    title: Boom
    instance: /do/0/guarded/try/0/fail
    """

  Scenario: exceptWhen skips the handler
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: default
      name: catch-except-when
      version: '1.0.0'
    do:
      - guarded:
          try:
            - fail:
                raise:
                  error:
                    type: https://example.com/errors/quota
                    status: 429
          catch:
            errors:
              with:
                type: https://example.com/errors/quota
            exceptWhen: ${ $error.status == 429 }
            do:
              - recover:
                  set:
                    recovered: true
    """
    When the workflow is executed
    Then the workflow should fault with error:
    """yaml
    type: https://example.com/errors/quota
    status: 429
    """
