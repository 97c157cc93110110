"""GitHub webhook bodies for the tests: the captured shapes under tests/fixtures/github/, changed
where a test needs, and signed as GitHub signs them (X-Hub-Signature-256, HMAC-SHA256)."""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures" / "github"
SECRET = "test-webhook-secret-0123456789abcdef"
ROUTE = "/webhooks/github"
_deliveries = itertools.count(1)


def fixture(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((FIXTURES / f"{name}.json").read_text()))


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def new_delivery() -> str:
    """A delivery id shaped like GitHub's (a GUID)."""
    n = next(_deliveries)
    return f"72d3162e-cc78-11e3-81ab-{n:012x}"


def request(
    event: str,
    payload: dict[str, Any] | bytes,
    *,
    delivery: str | None = None,
    secret: str = SECRET,
    signature: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The body and headers GitHub sends for one delivery."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/a1b2c3d",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or new_delivery(),
        "X-GitHub-Hook-ID": "478123456",
        "X-Hub-Signature-256": signature if signature is not None else sign(body, secret),
    }
    return body, headers


def workflow_run(
    conclusion: str,
    *,
    run_id: int,
    started: str,
    number: int | None = None,
    branch: str = "main",
    name: str = "CI",
) -> dict[str, Any]:
    """The captured workflow_run body (failure or success) for another run of the workflow."""
    body = fixture("workflow_run_failure" if conclusion != "success" else "workflow_run_success")
    run = body["workflow_run"]
    run.update(
        id=run_id,
        conclusion=conclusion,
        run_started_at=started,
        head_branch=branch,
        name=name,
        run_number=number or run_id % 1000,
        html_url=f"https://github.com/hyper-hash/hyper-node/actions/runs/{run_id}",
    )
    return body


def merged_pr(number: int, title: str, *, body: str | None = None, base: str = "main") -> dict:
    payload = fixture("pull_request_merged")
    pr = payload["pull_request"]
    payload["number"] = number
    pr.update(
        number=number,
        title=title,
        body=body,
        html_url=f"https://github.com/hyper-hash/hyper-node/pull/{number}",
    )
    pr["base"]["ref"] = base
    return payload
