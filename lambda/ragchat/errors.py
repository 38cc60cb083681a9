"""Errors that adapters raise and the HTTP app maps to status codes.

Each carries the pipeline step that failed, so a client sees which service broke."""

from __future__ import annotations


class SettingError(ValueError):
    """A local setting (an environment variable, a path) that cannot be used; the message names it."""


class ChatServiceError(Exception):
    status = 500
    code = "internal_error"
    field: str | None = None  # the request field at fault, for a 4xx
    # An upstream's failure (a model endpoint, the index, Bedrock), as opposed to a limit of this
    # service's own (busy, deadline, shutdown): the log says which, since the fixes differ.
    upstream = True
    # False: a retry cannot succeed, and the `x-should-retry: false` header says so to the OpenAI
    # SDKs (whose default 2 retries otherwise ran a request that missed its deadline three times).
    retryable = True

    def __init__(self, message: str, *, step: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.retry_after = retry_after


class InputTooLong(ChatServiceError):
    """The question alone leaves the model's window no room for context and a reply: a
    request within the character limits can still be too long for a small window."""

    status = 400
    code = "input_too_long"
    field = "inputs"


class RetrievalUnavailable(ChatServiceError):
    """The vector index cannot be reached; the engine answers without context."""

    status = 503
    code = "retrieval_unavailable"


class UpstreamThrottled(ChatServiceError):
    status = 429
    code = "throttled"


class UpstreamNotReady(ChatServiceError):
    """The endpoint exists in the stack but is not in service (creating, updating, or
    scaled to zero): a client should come back in minutes, not seconds."""

    status = 503
    code = "endpoint_not_ready"


class UpstreamModelError(ChatServiceError):
    status = 502
    code = "model_error"


class UpstreamTimeout(ChatServiceError):
    status = 504
    code = "timeout"


class StoreUnavailable(ChatServiceError):
    status = 503
    code = "store_unavailable"


class UpstreamAccessDenied(ChatServiceError):
    """The model provider refuses this deployment (an IAM or SCP deny, a subscription or
    a form the account still owes): an operator must act, so retrying cannot help."""

    status = 502
    code = "model_access_denied"


class UpstreamModelUnavailable(ChatServiceError):
    """The configured model id is not served where the service calls it (a wrong id, a
    model not offered in the region, one that needs an inference profile, a legacy one)."""

    status = 502
    code = "model_unavailable"
