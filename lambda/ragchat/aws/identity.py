"""Who is calling the Function URL: the owner of the conversations a request may read
and extend.

With `AWS_IAM` auth, Lambda puts the verified caller in the request context
(`authorizer.iam`: `accountId`, `userArn`, `userId`, `accessKey`, ...) and the Web
Adapter passes that context to the app in the `x-amzn-request-context` header, replacing
any header of that name the client sent. The owner is the caller's `userArn`, except
that an assumed role's ARN (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`) is cut to
the role: the session name is picked by whoever assumes the role, so it separates
nobody. Everyone acting through one role is one owner. For the same reason a federated
user (`arn:aws:sts::ACCOUNT:federated-user/NAME`, NAME given to GetFederationToken by
its caller) is cut to `federated-user`: all of an account's federated users are one owner.

Without an IAM identity (`function_url_auth=NONE`) every caller is `anonymous`: one
shared namespace, where a conversation is protected only by its session id being
unguessable."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

ANONYMOUS = "anonymous"
REQUEST_CONTEXT_HEADER = "x-amzn-request-context"
ASSUMED_ROLE_SESSION = re.compile(r"^(arn:aws[a-z-]*:sts::\d{12}:assumed-role/[^/]+)/[^/]+$")
# `aws sts get-federation-token --name NAME`: any IAM user allowed to call it picks any NAME
FEDERATED_USER = re.compile(r"^(arn:aws[a-z-]*:sts::\d{12}:federated-user)/.+$")


def caller_identity(headers: Mapping[str, str]) -> str:
    """The owner of this request's conversations (see the module docstring)."""
    try:
        context = json.loads(headers.get(REQUEST_CONTEXT_HEADER) or "{}")
        arn = context["authorizer"]["iam"]["userArn"]
    except (ValueError, KeyError, TypeError):
        return ANONYMOUS
    if not isinstance(arn, str) or not arn:
        return ANONYMOUS
    chosen_name = ASSUMED_ROLE_SESSION.match(arn) or FEDERATED_USER.match(arn)
    return chosen_name[1] if chosen_name else arn
