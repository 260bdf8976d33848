"""Request body → one temporary audio file, never larger than the limit, always removed.

Accepts ``multipart/form-data`` (the field ``file``; other fields are ignored) or a raw body
with an audio content type. The body is streamed to disk as it arrives and cut off at the
limit, so an oversize upload costs neither memory nor more disk than the limit. Nothing of
the audio is logged or kept: the file is deleted when the request ends, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from pathlib import Path
from typing import AsyncIterator

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

#: Non-``audio/*`` types that browsers and tools send for audio (MediaRecorder: video/webm).
AUDIO_TYPES = {b"application/octet-stream", b"application/ogg", b"video/webm", b"video/mp4", b"video/ogg"}
FIELD = "file"
MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around the file


class UploadError(Exception):
    """A request whose body cannot be used, with its HTTP status and a stable error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def is_audio_type(media: bytes) -> bool:
    return media.startswith(b"audio/") or media in AUDIO_TYPES


@contextlib.asynccontextmanager
async def uploaded_audio(request, max_bytes: int, timeout: float | None = None) -> AsyncIterator[Path]:
    """Save the request's audio to a temporary file; yields its path, removes it on exit.

    ``timeout`` bounds the upload in seconds (a client trickling bytes holds a connection).

    Raises
    ------
    UploadError
        413 over ``max_bytes``, 415 for another content type, 400 for an empty body, a
        multipart body without a ``file`` part or a malformed one, 408 past ``timeout``.
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + MULTIPART_SLACK:
        raise _too_large(max_bytes)  # refused before reading a byte
    media, params = parse_options_header(request.headers.get("content-type", ""))
    media = media.lower()
    if media != b"multipart/form-data" and not is_audio_type(media):
        raise UploadError(415, "unsupported_media_type",
                          "send the audio as multipart/form-data (field 'file') or as a raw body with an "
                          f"audio content type (audio/wav, audio/webm, ...); got {media.decode() or 'none'!r}")
    fd, name = tempfile.mkstemp(prefix="emovox-serve-", suffix=".audio")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            reader = _multipart(request, out, params.get(b"boundary"), max_bytes) \
                if media == b"multipart/form-data" else _raw(request, out, max_bytes)
            try:
                size = await asyncio.wait_for(reader, timeout)
            except asyncio.TimeoutError:
                raise UploadError(408, "upload_timeout", f"the upload took longer than {timeout:g} s") from None
        if size == 0:
            raise UploadError(400, "empty_body", "the request holds no audio (empty body or empty file)")
        yield path
    finally:
        path.unlink(missing_ok=True)


async def _raw(request, out, max_bytes: int) -> int:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes)
        out.write(chunk)
    return size


async def _multipart(request, out, boundary: bytes | None, max_bytes: int) -> int:
    if not boundary:
        raise UploadError(400, "bad_multipart", "multipart/form-data without a boundary")
    state = {"headers": {}, "field": b"", "value": b"", "in_file": False, "found": False, "size": 0}

    def on_part_begin():
        state["headers"], state["in_file"] = {}, False

    def on_header_field(data, start, end):
        state["field"] += data[start:end]

    def on_header_value(data, start, end):
        state["value"] += data[start:end]

    def on_header_end():
        state["headers"][state["field"].lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_headers_finished():
        _, opts = parse_options_header(state["headers"].get(b"content-disposition", b""))
        if opts.get(b"name") == FIELD.encode() and not state["found"]:
            state["in_file"] = state["found"] = True

    def on_part_data(data, start, end):
        if state["in_file"]:
            state["size"] += end - start
            if state["size"] > max_bytes:
                raise _too_large(max_bytes)
            out.write(data[start:end])

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished, "on_part_data": on_part_data,
    })
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > max_bytes + MULTIPART_SLACK:
                raise _too_large(max_bytes)
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as err:
        raise UploadError(400, "bad_multipart", f"malformed multipart body ({err})") from None
    if not state["found"]:
        raise UploadError(400, "missing_file", f"the multipart body has no {FIELD!r} field")
    return state["size"]


def _too_large(max_bytes: int) -> UploadError:
    return UploadError(413, "too_large", f"the upload is larger than the limit of {max_bytes / 1e6:g} MB")
