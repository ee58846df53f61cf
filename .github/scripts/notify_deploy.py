"""Post one deploy's result to Slack from GitHub Actions (stdlib only: runs before any install).

Reads WEBHOOK (an incoming-webhook URL; unset: print and exit 0), RESULT (the job status),
DOCTOR (the post-deploy `cali doctor` outcome), ENV_NAME, REF and RUN_URL.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request

ICONS = {"success": ":white_check_mark:", "failure": ":x:", "cancelled": ":warning:"}


def message(env: dict[str, str]) -> dict[str, str]:
    result = env.get("RESULT", "unknown")
    doctor = env.get("DOCTOR", "")
    checks = "" if doctor in ("", "success") else f" (post-deploy `cali doctor`: {doctor})"
    text = (
        f"{ICONS.get(result, ':grey_question:')} CALI deploy of *{env.get('ENV_NAME', '?')}* "
        f"({env.get('REF', '?')}): {result}{checks}. <{env.get('RUN_URL', '')}|Run log>"
    )
    return {"text": text}


def main() -> int:
    webhook = os.environ.get("WEBHOOK", "")
    payload = message(dict(os.environ))
    if not webhook:
        print("DEPLOY_SLACK_WEBHOOK_URL is not set: no Slack message.", payload["text"])
        return 0
    if not webhook.startswith("https://"):
        print("DEPLOY_SLACK_WEBHOOK_URL must be an https URL", file=sys.stderr)
        return 1
    request = urllib.request.Request(  # noqa: S310 - https checked above
        webhook, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        print(f"Slack answered {response.status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
