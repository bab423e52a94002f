Feature: Crash and Resume
  As an operations engineer
  I want a document interrupted by a restart to go on where it was
  So that no task runs twice and nothing is lost

  Scenario: A run resumes at the task it was in after the process restarts
    Given a catalog function count:1.0.0 that counts its calls
    And a deployed workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: ops
      name: resumable
      version: '1.0.0'
    do:
      - first:
          call: count:1.0.0@default
      - pause:
          wait: PT1M
      - second:
          call: count:1.0.0@default
      - done:
          set:
            calls: ${ . }
    """
    When the deployed workflow ops/resumable is started
    Then the workflow should be waiting
    When the process restarts
    And 60 seconds pass
    And the workflow finishes
    Then the workflow should complete with output:
    """yaml
    calls: 2
    """
    And the catalog function count should have run 2 times

  Scenario: A worker killed in the middle of a task is replaced and the run resumes there
    Given a document deployed for worker processes:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: ops
      name: crashy
      version: '1.0.0'
    do:
      - first:
          run:
            shell:
              command: echo first >> "$1"
              arguments: [ COUNTER_FILE ]
      - slow:
          run:
            shell:
              command: echo slow >> "$1"; while [ -f "$2" ]; do sleep 0.05; done
              arguments: [ COUNTER_FILE, BLOCK_FILE ]
      - last:
          set:
            done: true
    """
    When a worker process starts the deployed workflow ops/crashy
    And the worker process is killed while slow runs
    And a new worker process takes over
    Then the workflow should complete with output:
    """yaml
    done: true
    """
    And the tasks should have run first, slow, slow
