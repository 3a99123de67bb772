"""The files of an image edit as httpx multipart parts, streamed with bounded memory.

The caller may give each image as the openai SDK takes it: ``bytes``, a path, a binary file
object, or a ``(filename, content[, content_type])`` tuple. A path is opened only while httpx
reads it (and closed at its end), so a request that is built but never sent holds no open file,
and a retry reads it again from the start.
"""

from __future__ import annotations

import mimetypes
import os
from typing import IO, Any

from modelyard.types import Upload

__all__ = ["PathFile", "file_part"]


class PathFile:
    """A file on disk that httpx reads in chunks: opened on first read, closed at its end.

    httpx asks its length (``seek``/``tell``) for ``Content-Length`` and rewinds it
    (``seek(0)``) before each send, so a retried request uploads it again.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.name = self.path
        self._file: IO[bytes] | None = None
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        if self._file is None:
            self._file = open(self.path, "rb")  # noqa: SIM115  closed at the end of the file
            self._file.seek(self._pos)
        data = self._file.read(size)
        if not data and size != 0:
            self._pos = self._file.tell()
            self.close()
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if self._file is not None:
            self._pos = self._file.seek(offset, whence)
            return self._pos
        if whence == os.SEEK_SET:
            self._pos = offset
        elif whence == os.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = os.path.getsize(self.path) + offset
        return self._pos

    def tell(self) -> int:
        return self._file.tell() if self._file is not None else self._pos

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _content_type(filename: str) -> str:
    # Azure refuses application/octet-stream for images: name png, jpeg or webp.
    return mimetypes.guess_type(filename)[0] or "image/png"


# An upload without a file name (bytes, an unnamed stream: the pipeline calls it "upload") is
# named by its first bytes, so Azure sees the image format it is; PNG when they tell nothing.
_MAGIC = ((b"\x89PNG", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"GIF8", ".gif"))


def _sniffed(content: Any, default_name: str) -> str:
    head = b""
    if isinstance(content, bytes):
        head = content[:12]
    elif hasattr(content, "seek") and hasattr(content, "tell"):
        start = content.tell()
        head = content.read(12)
        content.seek(start)
    ext = next((e for magic, e in _MAGIC if head.startswith(magic)), None)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        ext = ".webp"
    stem = default_name.rpartition(".")[0]
    return f"{stem}{ext}" if ext else default_name


def file_part(value: Any, default_name: str) -> tuple[str, Any, str]:
    """One upload as httpx's ``(filename, content, content_type)``; content is streamed, not read.

    Takes what the pipeline hands on (``(filename, fileobj, content_type)`` parts, see
    :attr:`modelyard.operations.Operation.files`) as well as what the openai SDK takes. A part
    without an extension in its name is named by its first bytes; one typed
    ``application/octet-stream`` (or not at all) is typed by its name.
    """
    if isinstance(value, Upload):
        value = value.value
    if isinstance(value, tuple):
        name = str(value[0]) if value[0] else ""
        if "." not in name:
            name = _sniffed(value[1], default_name)
        ctype = value[2] if len(value) > 2 and value[2] else ""
        if not ctype or ctype == "application/octet-stream":
            ctype = _content_type(name)
        return name, value[1], ctype
    if isinstance(value, bytes):
        name = _sniffed(value, default_name)
        return name, value, _content_type(name)
    if isinstance(value, str | os.PathLike):
        path = os.fspath(value)
        if not os.path.isfile(path):
            raise FileNotFoundError(path)
        name = os.path.basename(path)
        return name, PathFile(path), _content_type(name)
    name = os.path.basename(str(getattr(value, "name", "") or "")) or _sniffed(value, default_name)
    return name, value, _content_type(name)
