"""Contracts between stages: the log record, levels, the incident message, the analysis
result and each Lambda's settings.

Every stage imports these; they import nothing else from CALI, so a change here is a change
to an interface and shows up in review as one."""
