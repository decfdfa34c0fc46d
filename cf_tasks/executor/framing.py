"""Parent side of the length-prefixed JSON framing shared with the worker scripts.

JSON, never pickle: a reply from a process that ran a program is data we do not trust
(CWM's ``JSONConnection`` rationale). Reads are bounded by a deadline and a size cap so a
stuck or chatty child can never block or flood the parent.
"""

from __future__ import annotations

import os
import select
import struct
import time

HEADER = struct.Struct(">I")


class FrameError(Exception):
    """The child broke the protocol: EOF, an oversized frame, or the deadline passed."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind  # "eof" | "deadline" | "oversize"


def encode(data: bytes) -> bytes:
    return HEADER.pack(len(data)) + data


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class FrameReader:
    """Incremental reader of frames from a pipe fd, with deadlines."""

    def __init__(self, fd: int, max_frame: int) -> None:
        self.fd = fd
        self.max_frame = max_frame
        self.buf = bytearray()
        self.poller = select.poll()
        self.poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)

    def _take(self) -> bytes | None:
        if len(self.buf) < 4:
            return None
        (n,) = HEADER.unpack_from(self.buf)
        if n > self.max_frame:
            raise FrameError("oversize", f"frame of {n} bytes exceeds {self.max_frame}")
        if len(self.buf) < 4 + n:
            return None
        frame = bytes(self.buf[4:4 + n])
        del self.buf[:4 + n]
        return frame

    def read(self, deadline: float) -> bytes:
        """The next frame; raises :class:`FrameError` on EOF, oversize or ``time.monotonic() > deadline``."""
        while True:
            frame = self._take()
            if frame is not None:
                return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FrameError("deadline")
            if not self.poller.poll(max(1, int(remaining * 1000) + 1)):
                continue
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                raise FrameError("eof")
            self.buf += chunk
