"""Conversations in DynamoDB: one item per turn, append-only.

The original rewrote the whole transcript on every turn, so the last of two concurrent
writers won and the item grew without bound. Here each turn is its own item under the
conversation's partition key (`conversation`: the caller's identity and the session id,
`<owner>#<session_id>`, so one caller's session id never reaches another's turns), its
sort key the write time in microseconds. A turn's user and
bot items go in one transaction, each conditional on its key being new: both land or
neither does, and a key collision with a concurrent writer is retried with a new time,
so no turn is ever overwritten or lost."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import StoreUnavailable
from ..interfaces import Turn

WRITE_ATTEMPTS = 8


class DynamoDbConversationStore:
    def __init__(self, client: Any, table: str, ttl_days: int = 30) -> None:
        self.client = client
        self.table = table
        self.ttl_seconds = ttl_days * 86400

    def load(self, conversation: str, limit: int = 50) -> list[Turn]:
        try:
            response = self.client.query(
                TableName=self.table,
                KeyConditionExpression="conversation = :c",
                # TTL deletes expired items lazily (within days), and a query returns them until then
                FilterExpression="expires_at > :now",
                ExpressionAttributeValues={":c": {"S": conversation}, ":now": {"N": str(int(time.time()))}},
                ExpressionAttributeNames={"#role": "role"},
                ProjectionExpression="#role, content",
                ScanIndexForward=False,
                Limit=limit,
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"cannot read the conversation ({_reason(exc)})", step="history") from None
        items = reversed(response.get("Items", []))
        return [Turn(item["role"]["S"], item["content"]["S"]) for item in items]

    def append(self, conversation: str, turns: Sequence[Turn]) -> None:
        for attempt in range(WRITE_ATTEMPTS):
            try:
                self.client.transact_write_items(TransactItems=self._puts(conversation, turns))
                return
            except ClientError as exc:
                if not _collided(exc) or attempt == WRITE_ATTEMPTS - 1:
                    raise StoreUnavailable(f"cannot store the turn ({_reason(exc)})", step="store") from None
                time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
            except BotoCoreError as exc:
                raise StoreUnavailable(f"cannot store the turn ({_reason(exc)})", step="store") from None

    def _puts(self, conversation: str, turns: Sequence[Turn]) -> list[dict[str, Any]]:
        now = time.time()
        first = time.time_ns() // 1000
        created = datetime.fromtimestamp(now, UTC).isoformat()
        expires = str(int(now) + self.ttl_seconds)
        return [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {
                        "conversation": {"S": conversation},
                        "turn": {"N": str(first + offset)},
                        "role": {"S": turn.role},
                        "content": {"S": turn.content},
                        "created_at": {"S": created},
                        "expires_at": {"N": expires},
                    },
                    "ConditionExpression": "attribute_not_exists(turn)",
                }
            }
            for offset, turn in enumerate(turns)
        ]


def _collided(exc: ClientError) -> bool:
    """A transaction cancelled because a key already existed (or a concurrent transaction
    held it): safe to retry with new keys, nothing was written."""
    error = exc.response.get("Error", {})
    if error.get("Code") == "TransactionConflictException":
        return True
    if error.get("Code") != "TransactionCanceledException":
        return False
    reasons = exc.response.get("CancellationReasons") or []
    codes = {reason.get("Code") for reason in reasons}
    if codes:
        return codes <= {"ConditionalCheckFailed", "TransactionConflict", "None"}
    return "ConditionalCheckFailed" in error.get("Message", "") or "TransactionConflict" in error.get("Message", "")


def _reason(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code", "ClientError")
    return type(exc).__name__
