"""Firehose adapter for prediction capture: JSON lines to the delivery stream that lands them
under `capture/` in the data bucket (the drift monitor's input)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.adapters import aws
from functions.common.errors import CaptureError

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 4 * 1024 * 1024
MAX_RECORD_BYTES = 1000 * 1024


class CaptureStream:
    """One Firehose delivery stream; the client is created on first use unless passed in."""

    _firehose = aws.LazyClient("firehose")

    def __init__(self, stream_name: str, firehose: Any | None = None) -> None:
        self.stream_name = stream_name
        self._client = firehose

    def put_lines(self, lines: Sequence[bytes]) -> int:
        """Send `lines` (each one record, newline-terminated) with `put_record_batch`, at most
        500 records and 4 MiB a call. Returns how many records Firehose did not take (records
        over Firehose's 1,000 KiB limit are not sent and count as not taken).

        Raises:
            CaptureError: a call failed (records of earlier calls were delivered).
        """
        failed = sum(1 for line in lines if len(line) > MAX_RECORD_BYTES)
        for chunk in _chunks([line for line in lines if len(line) <= MAX_RECORD_BYTES]):
            try:
                response = self._firehose.put_record_batch(
                    DeliveryStreamName=self.stream_name,
                    Records=[{"Data": line} for line in chunk],
                )
            except (ClientError, BotoCoreError) as exc:
                raise CaptureError(
                    f"put_record_batch to delivery stream {self.stream_name} failed: {exc}"
                ) from exc
            failed += int(response.get("FailedPutCount", 0))
        return failed


def _chunks(lines: Sequence[bytes]) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    size = 0
    for line in lines:
        if chunk and (len(chunk) == MAX_RECORDS_PER_CALL or size + len(line) > MAX_BYTES_PER_CALL):
            yield chunk
            chunk, size = [], 0
        chunk.append(line)
        size += len(line)
    if chunk:
        yield chunk
