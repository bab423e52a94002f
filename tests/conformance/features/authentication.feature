Feature: Authenticated HTTP Calls
  As an operations engineer
  I want calls to carry credentials from secrets and reusable policies
  So that documents reach protected APIs without holding passwords

  Scenario: A reusable OAuth2 client credentials policy authenticates a call
    Given the secret oauth holds:
    """yaml
    authority: https://auth.example.test
    grant: client_credentials
    client:
      id: workflow-runtime
      secret: s3cr3t-client-secret
    """
    And a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: default
      name: oauth2-call
      version: '1.0.0'
    use:
      secrets: [oauth]
      authentications:
        runtime:
          oauth2:
            use: oauth
    do:
      - whoami:
          call: http
          with:
            method: get
            endpoint:
              uri: https://httpbin.org/bearer
              authentication:
                use: runtime
    """
    When the workflow is executed
    Then the workflow should complete
    And the workflow output should have properties 'authenticated', 'token'
    And the authority should have issued 1 token

  Scenario: A bearer token from an expression authenticates a call
    Given the secret apiToken holds:
    """yaml
    token-123
    """
    And a workflow with definition:
    """yaml
    document:
      dsl: '1.0.3'
      namespace: default
      name: bearer-call
      version: '1.0.0'
    use:
      secrets: [apiToken]
    do:
      - whoami:
          call: http
          with:
            method: get
            endpoint:
              uri: https://httpbin.org/bearer
              authentication:
                bearer:
                  token: ${ $secrets.apiToken }
    """
    When the workflow is executed
    Then the workflow should complete with output:
    """yaml
    authenticated: true
    token: '***'
    """
