"""CALI's AWS CDK app: one Stage per environment, built from ``cdk.json`` context."""
