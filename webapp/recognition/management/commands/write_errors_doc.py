"""Write docs/errors.md from the ErrorCode enum (run after adding a code)."""
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from webapp.recognition.errors import HTTP_STATUS, ErrorCode

HEADER = """# Error codes

Every error the API returns has one shape, whatever the endpoint:

```json
{"error": {"code": "too_many_pixels", "message": "'scan.png' has 48,000,000 pixels; the limit MAX_IMAGE_PIXELS is 40,000,000", "limit": "MAX_IMAGE_PIXELS", "limit_value": 40000000}}
```

`code` is stable and is one value of the `ErrorCodeEnum` in the OpenAPI schema (`/api/schema/`); `message` is for people.
Extra fields: `fields` (per-field messages, `invalid_request`), `limit` and `limit_value` (the setting a request went over),
`retry_after` (seconds, `throttled`; also the `Retry-After` header), `best_reading` and `position` (`unparsable_expression`).

This file is generated: `python webapp/manage.py write_errors_doc`.
"""


class Command(BaseCommand):
    help = __doc__

    def handle(self, **options):
        out = [HEADER, "## Request errors (HTTP status)", "", "| code | HTTP | meaning |", "|---|---|---|"]
        out += [f"| `{c.value}` | {HTTP_STATUS[c.value]} | {c.label} |" for c in ErrorCode if c.value in HTTP_STATUS]
        out += ["", "## Job errors", "",
                "A job that ran but could not be read ends with `status: failed` and one of these in its `error`",
                "(the HTTP status of `GET /api/v1/jobs/{id}/` is still 200). Lines of a worksheet fail one by one:",
                "a page fails only when none of its lines can be read.", "", "| code | meaning |", "|---|---|"]
        out += [f"| `{c.value}` | {c.label.removeprefix('Job: ')} |" for c in ErrorCode if c.value not in HTTP_STATUS]
        out += ["", "`internal_error` can also end a job: an unexpected exception in the worker, or transient errors",
                "(database, storage) that outlived their retries (`JOB_MAX_RETRIES`). It is logged with its traceback.", ""]
        path = Path(settings.REPO_DIR) / "docs" / "errors.md"
        path.write_text("\n".join(out))
        self.stdout.write(f"wrote {path}")
