"""Stage ``incidents`` (the back of the log consumer): one batch's kept records -> one incident
per fingerprint -> throttle/dedupe in DynamoDB -> one SQS message per alert (docs/incidents.md)."""
