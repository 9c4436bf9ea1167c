"""Did any process open or read a file? Linux inotify through ctypes (no third-party package needed)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
from pathlib import Path

IN_ACCESS = 0x001
IN_OPEN = 0x020
IN_NONBLOCK = 0o4000
_EVENT = struct.Struct("iIII")


class FileWatch:
    """Counts opens and reads of the watched files from the moment it is created."""

    def __init__(self, paths: list[Path]) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._fd = libc.inotify_init1(IN_NONBLOCK)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._names: dict[int, str] = {}
        for path in paths:
            wd = libc.inotify_add_watch(self._fd, str(path).encode(), IN_OPEN | IN_ACCESS)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {path} failed")
            self._names[wd] = path.name
        self.opens: dict[str, int] = {path.name: 0 for path in paths}
        self.reads: dict[str, int] = {path.name: 0 for path in paths}

    def poll(self) -> None:
        """Drain pending events into the counters."""
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size + length
                name = self._names.get(wd)
                if name is None:
                    continue
                if mask & IN_OPEN:
                    self.opens[name] += 1
                if mask & IN_ACCESS:
                    self.reads[name] += 1

    def close(self) -> None:
        os.close(self._fd)
