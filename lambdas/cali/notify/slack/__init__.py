"""Slack delivery: Block Kit layout, escaping, webhook and bot modes with retries and threads
(docs/slack.md)."""
