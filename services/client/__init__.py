"""The public Python client of the cryptopulse gateway.

```python
import asyncio
from services.client import GatewayClient, Snapshot, Update, Error

async def main() -> None:
    async for message in GatewayClient("ws://127.0.0.1:8765/ws", ["sector:ai", "alerts:*"]):
        if isinstance(message, (Snapshot, Update)):
            print(message.channel, message.seq, message.data["cap_usd"] if message.family == "sector" else message.data)
        elif isinstance(message, Error):
            raise SystemExit(f"refused: {message.code} {message.message}")

asyncio.run(main())
```

Reconnects with exponential backoff and jitter, resumes each channel from its last (epoch, seq),
never yields a message twice, and marks records of a reset stream (``reset``) and skipped seqs
(``gap``). It depends on ``websockets`` and ``orjson`` only (no Kafka, no server code).
"""

from services.client.connection import Backoff, ClientClosed, GatewayClient, GatewayRefused
from services.client.messages import (
    Ack,
    Error,
    History,
    Message,
    Pong,
    Positions,
    ProtocolViolation,
    Record,
    Snapshot,
    Update,
    parse,
)

__all__ = ["Ack", "Backoff", "ClientClosed", "Error", "GatewayClient", "GatewayRefused", "History", "Message", "Pong", "Positions",
           "ProtocolViolation", "Record", "Snapshot", "Update", "parse"]
