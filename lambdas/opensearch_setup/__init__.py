"""Deploy-time OpenSearch setup run by the stack's custom resource."""
