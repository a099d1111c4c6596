"""The file adapter: one JSON line per message in `<directory>/<channel>.jsonl`, for batch hand-off.

Idempotent by dispatch id across crashes: opening a channel's file reads the ids already in it
(cutting off a torn last line that a crash left without its newline), and a message whose id is
there is answered with the first line's receipt instead of being written again. A batch is
flushed and fsynced before `send` returns, so a SENT dispatch is on disk. One process owns a
directory at a time (an exclusive lock on each file): two writers could not see each other's ids.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from crm_campaign.dispatch.adapters.base import OutboundMessage, Outcome, Receipt


class _ChannelFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] = open(path, "a+b")  # noqa: SIM115 (held open for the adapter's life)
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._file.close()
            raise RuntimeError(f"{path} is held by another dispatcher process; give each its own directory") from exc
        self.seen: dict[str, str] = {}
        self._lines = 0
        self._recover()

    def _recover(self) -> None:
        """Index the complete lines and cut a torn tail (a crash mid-write) so the next line starts clean."""
        self._file.seek(0)
        data = self._file.read()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):
            self._file.truncate(complete)
        for line in data[:complete].splitlines():
            self._lines += 1
            self.seen[json.loads(line)["dispatch_id"]] = self._receipt_id(self._lines)
        self._file.seek(0, os.SEEK_END)

    def _receipt_id(self, line_number: int) -> str:
        return f"{self.path.name}:{line_number}"

    def write(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        chunk: list[bytes] = []
        for message in messages:
            known = self.seen.get(message.dispatch_id)
            if known is not None:
                outcomes.append(Receipt(known, duplicate=True))
                continue
            self._lines += 1
            receipt = self._receipt_id(self._lines)
            self.seen[message.dispatch_id] = receipt
            chunk.append(json.dumps({
                "dispatch_id": message.dispatch_id, "campaign": f"campaigns/{message.campaign_id}",
                "customer": f"customers/{message.customer_id}",
                "offer": f"campaigns/{message.campaign_id}/offers/{message.offer_id}",
                "channel": message.channel, "template_id": message.template_id, "headline": message.headline,
            }, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
            outcomes.append(Receipt(receipt))
        if chunk:
            self._file.write(b"".join(chunk))
            self._file.flush()
            os.fsync(self._file.fileno())
        return outcomes

    def close(self) -> None:
        self._file.close()


class FileAdapter:
    """JSON lines per channel in `directory` (created when missing)."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._files: dict[str, _ChannelFile] = {}
        self._lock = asyncio.Lock()

    def _file(self, channel: str) -> _ChannelFile:
        found = self._files.get(channel)
        if found is None:
            self._directory.mkdir(parents=True, exist_ok=True)
            found = self._files[channel] = _ChannelFile(self._directory / f"{channel.lower()}.jsonl")
        return found

    async def send(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        by_channel: dict[str, list[int]] = {}
        for index, message in enumerate(messages):
            by_channel.setdefault(message.channel, []).append(index)
        outcomes: list[Outcome | None] = [None] * len(messages)
        async with self._lock:  # one writer per file; the fsync runs off the event loop
            for channel, indexes in by_channel.items():
                written = await asyncio.to_thread(self._write, channel, [messages[i] for i in indexes])
                for index, outcome in zip(indexes, written, strict=True):
                    outcomes[index] = outcome
        return [o for o in outcomes if o is not None]

    def _write(self, channel: str, messages: list[OutboundMessage]) -> list[Outcome]:
        return self._file(channel).write(messages)

    async def close(self) -> None:
        for channel_file in self._files.values():
            channel_file.close()
        self._files.clear()
