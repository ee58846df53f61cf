"""The incident lifecycle: acknowledge, resolve, mute, escalate, learn.

An alert used to be a one-way message. This package keeps one lifecycle record per
fingerprint (open -> acknowledged -> resolved, reopened on regression, muted until a
time), verifies and interprets Slack's interactivity and slash-command requests, and
decides escalations and quiet resolutions. Handlers (``slack_interactions``,
``incident_timers``) stay thin and call into it; the CLI does the same state changes.
"""
