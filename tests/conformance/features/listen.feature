Feature: Listen Task
  As an operations engineer
  I want a document to wait for events such as alerts and approvals
  So that remediation reacts to what happens, without polling

  Scenario: Listen to one event
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: default
      name: listen-one
      version: '1.0.0'
    do:
      - awaitResolution:
          listen:
            to:
              one:
                with:
                  type: com.example.alert.resolved.v1
                  source: https://alerts.example.com
    """
    When the workflow is started
    Then the workflow should be waiting
    When an event is emitted:
    """yaml
    specversion: '1.0'
    id: evt-0
    type: com.example.alert.fired.v1
    source: https://alerts.example.com
    data:
      alert: disk-full
    """
    And an event is emitted:
    """yaml
    specversion: '1.0'
    id: evt-1
    type: com.example.alert.resolved.v1
    source: https://alerts.example.com
    data:
      alert: disk-full
    """
    And the workflow finishes
    Then the workflow should complete with output:
    """yaml
    - alert: disk-full
    """

  Scenario: Listen to all events, correlated with the input
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: default
      name: listen-all
      version: '1.0.0'
    do:
      - awaitBoth:
          listen:
            to:
              all:
                - with:
                    type: com.example.deploy.finished.v1
                  correlate:
                    service:
                      from: ${ .data.service }
                      expect: ${ .service }
                - with:
                    type: com.example.check.passed.v1
                  correlate:
                    service:
                      from: ${ .data.service }
                      expect: ${ .service }
            read: envelope
          output:
            as: ${ map(.type) }
    """
    And given the workflow input is:
    """yaml
    service: api
    """
    When the workflow is started
    Then the workflow should be waiting
    When an event is emitted:
    """yaml
    specversion: '1.0'
    id: d-web
    type: com.example.deploy.finished.v1
    source: ci
    data:
      service: web
    """
    And an event is emitted:
    """yaml
    specversion: '1.0'
    id: c-api
    type: com.example.check.passed.v1
    source: ci
    data:
      service: api
    """
    Then the workflow should be waiting
    When an event is emitted:
    """yaml
    specversion: '1.0'
    id: d-api
    type: com.example.deploy.finished.v1
    source: ci
    data:
      service: api
    """
    And the workflow finishes
    Then the workflow should complete with output:
    """yaml
    - com.example.check.passed.v1
    - com.example.deploy.finished.v1
    """

  Scenario: Listen to any event until a condition holds, then handle each
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: default
      name: listen-any-until
      version: '1.0.0'
    do:
      - collect:
          listen:
            to:
              any:
                - with:
                    type: com.example.reading.v1
              until: ${ length >= 2 }
          foreach:
            item: reading
            do:
              - scale:
                  set:
                    celsius: ${ $reading.value / 10 }
    """
    When the workflow is started
    Then the workflow should be waiting
    When an event is emitted:
    """yaml
    specversion: '1.0'
    id: r1
    type: com.example.reading.v1
    source: sensor
    data:
      value: 215
    """
    Then the workflow should be waiting
    When an event is emitted:
    """yaml
    specversion: '1.0'
    id: r2
    type: com.example.reading.v1
    source: sensor
    data:
      value: 230
    """
    And the workflow finishes
    Then the workflow should complete with output:
    """yaml
    - celsius: 21.5
    - celsius: 23
    """

  Scenario: Listen gives up at its timeout
    Given a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: default
      name: listen-timeout
      version: '1.0.0'
    do:
      - awaitApproval:
          listen:
            to:
              one:
                with:
                  type: com.example.approval.v1
          timeout:
            after:
              minutes: 15
    """
    When the workflow is started
    Then the workflow should be waiting
    When 900 seconds pass
    And the workflow finishes
    Then the workflow should fault with error:
    """yaml
    type: timeout
    status: 408
    instance: /do/0/awaitApproval
    """
