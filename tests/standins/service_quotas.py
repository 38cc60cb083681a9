"""A stand-in for Service Quotas' `ListServiceQuotas` (AWS JSON 1.1 protocol: `POST /` with
`X-Amz-Target: ServiceQuotasV20190624.ListServiceQuotas`), paginated with NextToken as the
real API is, so a client that reads only the first page is caught."""

from __future__ import annotations

import re
from http.server import BaseHTTPRequestHandler
from urllib.parse import unquote

from .base import Recorded, StandInServer, refuse_unknown_target, send_json

TARGET = "ServiceQuotasV20190624.ListServiceQuotas"
PAGE_SIZE = 2


class ServiceQuotasStandIn(StandInServer):
    def __init__(self, quotas: dict[str, float]) -> None:
        """`quotas`: quota name -> applied value, for ServiceCode sagemaker."""
        self.quotas = quotas
        super().__init__()

    def handle(self, handler: BaseHTTPRequestHandler, recorded: Recorded) -> None:
        if refuse_unknown_target(handler, recorded, TARGET):
            return
        body = recorded.json()
        if body.get("ServiceCode") != "sagemaker":
            send_json(handler, 400, {"__type": "NoSuchResourceException", "message": "unknown service"})
            return
        items = [
            {"ServiceCode": "sagemaker", "QuotaCode": f"L-{index:08X}", "QuotaName": name, "Value": value}
            for index, (name, value) in enumerate(sorted(self.quotas.items()))
        ]
        start = int(body.get("NextToken") or 0)
        page = {"Quotas": items[start : start + PAGE_SIZE]}
        if start + PAGE_SIZE < len(items):
            page["NextToken"] = str(start + PAGE_SIZE)
        send_json(handler, 200, page)


class LambdaAccountStandIn(StandInServer):
    """Lambda's `GetAccountSettings` (REST: `GET /2016-08-19/account-settings/`) and
    `GetFunctionConcurrency` (`GET /2019-09-30/functions/{name}/concurrency`). As in Lambda,
    the unreserved figure already leaves out what functions reserve."""

    def __init__(self, unreserved: int, reserved: dict[str, int] | None = None) -> None:
        self.unreserved = unreserved
        self.reserved = reserved or {}  # function name -> its reserved concurrency
        super().__init__()

    def handle(self, handler: BaseHTTPRequestHandler, recorded: Recorded) -> None:
        concurrency = re.fullmatch(r"/2019-09-30/functions/([^/]+)/concurrency", recorded.path.split("?")[0])
        if recorded.method == "GET" and concurrency:
            name = unquote(concurrency.group(1))
            body = {"ReservedConcurrentExecutions": self.reserved[name]} if name in self.reserved else {}
            send_json(handler, 200, body)
            return
        if recorded.method != "GET" or not recorded.path.startswith("/2016-08-19/account-settings"):
            send_json(handler, 404, {"Type": "User", "message": "unknown route"})
            return
        limit = {"ConcurrentExecutions": 1000, "UnreservedConcurrentExecutions": self.unreserved}
        send_json(handler, 200, {"AccountLimit": limit, "AccountUsage": {"FunctionCount": 0}})
