"""Amazon Bedrock's failures as the service's errors, each naming its cause and its fix.

Bedrock has no per-model "model access" page any more: serverless models are enabled on
first use. What an operator still meets on the first call is one of the answers below,
matched on the error code and the message Bedrock sends today (see the Bedrock user
guide's "Troubleshooting Amazon Bedrock API Error Codes"). Throttling and 5xx answers
are retried by botocore's standard mode before they surface here."""

from __future__ import annotations

from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    EventStreamError,
    ReadTimeoutError,
)

from ..errors import (
    ChatServiceError,
    UpstreamAccessDenied,
    UpstreamModelError,
    UpstreamModelUnavailable,
    UpstreamThrottled,
    UpstreamTimeout,
)

DEFAULT_RETRY_AFTER_SECONDS = 2
# Error codes of the Converse API as botocore reports them: HTTP errors carry the shape
# name, exceptions inside the event stream the member name (`throttlingException`).
THROTTLED = {"throttlingexception", "modelnotreadyexception", "serviceunavailableexception", "toomanyrequestsexception"}
TIMED_OUT = {"modeltimeoutexception"}
STREAM_FAILED = {"modelstreamerrorexception", "modelerrorexception", "internalserverexception"}
# The cause named when IAM (not an SCP, not Marketplace) denies the call; ragchat preflight,
# which calls as the operator rather than as the function, words it for its caller.
ROLE_HAS_NO_GRANT = "the chat function's IAM role has no grant for this model"


def _access_denied(model_id: str, message: str, step: str) -> ChatServiceError:
    lowered = message.lower()
    if "aws-marketplace" in lowered or "marketplace subscription" in lowered:
        cause = "the model is sold through AWS Marketplace and this account has no subscription to it yet"
        fix = (
            "invoke the model once (Bedrock console playground, or `aws bedrock-runtime converse`) as a "
            "principal allowed aws-marketplace:Subscribe and aws-marketplace:ViewSubscriptions, then retry "
            "after a few minutes; the chat function itself never needs Marketplace permissions"
        )
    elif "service control policy" in lowered:
        cause = "an AWS Organizations service control policy denies this Bedrock call"
        fix = (
            "ask your organization's administrator to allow bedrock:InvokeModel and "
            "bedrock:InvokeModelWithResponseStream for this model (for an inference profile: in every "
            "destination region of the profile), or choose a model and region the policy allows"
        )
    elif "no identity-based policy allows" in lowered or "is not authorized to perform" in lowered:
        cause = ROLE_HAS_NO_GRANT
        fix = (
            "deploy the stack again with the model you call (-c ragchat:bedrock_model_id=...), so its grant names "
            "it; for an inference profile the grant must also cover the foundation model in every destination "
            "region (-c ragchat:bedrock_destination_regions=...)"
        )
    elif "don't have access to the model" in lowered or "not authorized to access this model" in lowered:
        cause = "this account is not allowed to use the model"
        fix = "check the model's availability for your account in the Bedrock console, or contact AWS Support"
    else:
        cause = "Bedrock denied the call"
        fix = "check the function role's bedrock:InvokeModel* grants and any service control policy"
    return UpstreamAccessDenied(f"Bedrock model {model_id}: {cause} ({message}). Fix: {fix}.", step=step)


def _not_available(model_id: str, code: str, message: str, step: str) -> ChatServiceError | None:
    lowered = message.lower()
    if "use case details" in lowered or "use-case form" in lowered or code == "ftuformnotfilled":
        cause = "the provider's first-use form (Anthropic's use case details) has not been submitted for this account"
        fix = (
            "submit it once in the Bedrock console (Model catalog, open the model, request access) from this "
            "account or the organization's management account, then retry"
        )
        return UpstreamAccessDenied(f"Bedrock model {model_id}: {cause} ({message}). Fix: {fix}.", step=step)
    if "on-demand throughput" in lowered and "inference profile" in lowered:
        cause = "this model is served in this region only through a cross-region inference profile"
        fix = (
            "set -c ragchat:bedrock_model_id to the profile id, the model id with its geography prefix "
            "(us., eu., apac., global.), and deploy again"
        )
    elif "legacy" in lowered:
        cause = "the provider marked this model as legacy and it is no longer served to this account"
        fix = "choose an active model with -c ragchat:bedrock_model_id and deploy again"
    elif "model identifier is invalid" in lowered or code == "resourcenotfoundexception":
        cause = "no such model or inference profile in this region (a misspelt id, or one not offered here)"
        fix = (
            "check the id against `aws bedrock list-foundation-models` / `list-inference-profiles` in the "
            "stack's region, then set -c ragchat:bedrock_model_id and deploy again"
        )
    else:
        return None
    return UpstreamModelUnavailable(f"Bedrock model {model_id}: {cause} ({message}). Fix: {fix}.", step=step)


def map_bedrock_error(exc: Exception, model_id: str, step: str) -> ChatServiceError:
    """One botocore failure of a Bedrock runtime call as the error a client should see."""
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError):
        return UpstreamTimeout(f"Bedrock model {model_id} did not answer in time", step=step)
    if isinstance(exc, EndpointConnectionError):
        return UpstreamModelError(f"cannot reach the Bedrock runtime for model {model_id}", step=step)
    if not isinstance(exc, ClientError):  # EventStreamError is a ClientError
        raise exc
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    message = str(error.get("Message", "")) or code
    key = code.lower()
    streaming = " while streaming" if isinstance(exc, EventStreamError) else ""
    if key in THROTTLED:
        text = f"Bedrock model {model_id} is throttling or busy{streaming} ({code}: {message}); retry later"
        return UpstreamThrottled(text, step=step, retry_after=DEFAULT_RETRY_AFTER_SECONDS)
    if key in TIMED_OUT:
        return UpstreamTimeout(f"Bedrock model {model_id} timed out{streaming} ({message})", step=step)
    if key == "accessdeniedexception":
        return _access_denied(model_id, message, step)
    if key in ("validationexception", "resourcenotfoundexception", "ftuformnotfilled"):
        mapped = _not_available(model_id, key, message, step)
        if mapped is not None:
            return mapped
    if key in STREAM_FAILED:
        return UpstreamModelError(f"Bedrock model {model_id} failed{streaming} ({code}): {message}", step=step)
    return UpstreamModelError(f"Bedrock model {model_id} refused the request ({code}): {message}", step=step)
