"""schemathesis hooks for tests/serving/test_schemathesis.py (``SCHEMATHESIS_HOOKS``).

``positive_data_acceptance_or_model_failed`` is schemathesis's own
``positive_data_acceptance`` check (a schema-valid request must not be rejected) with one
documented exception: a 422 whose body is a ``ModelFailedError``. The schema says what a
request may hold; whether the served model can score those values (say 1.8e308, finite
in JSON and infinite once the model casts to float32) only the model can tell, and the
API document gives that answer: 422, the records' prediction ids, no exception text. Any
other rejection of a schema-valid request (a 422 ``ValidationError``, a 400, a 413) still
fails the check.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from schemathesis import Case, CheckContext, Response
from schemathesis.specs.openapi.checks import _openapi_positive_data_acceptance


def _error_type(response: Response) -> str | None:
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    return kind if isinstance(kind, str) else None


@schemathesis.check
def positive_data_acceptance_or_model_failed(
    ctx: CheckContext, response: Response, case: Case[Any]
) -> bool | None:
    if response.status_code == 422 and _error_type(response) == "ModelFailedError":
        return None  # the model could not score these (schema-valid) values: documented
    result: bool | None = _openapi_positive_data_acceptance(ctx, response, case)
    return result
