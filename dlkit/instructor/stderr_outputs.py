"""Stderr never costs points: the grader records what a kernel writes to stderr as stdout.

nbgrader's ``determine_grade`` scores a test cell zero when it has an ``error`` output *or
any* ``stderr`` *stream*. An honest answer writes to stderr often enough: ``logging.warning``
(Python's last-resort handler, or a ``StreamHandler``), ``print(..., file=sys.stderr)``,
a C library writing to file descriptor 2 (ipykernel forwards that as a stderr stream).

The fix lives in the grader, where an answer cannot undo it (it can reassign
``sys.stderr`` or ``os.dup2`` file descriptors in the kernel). nbgrader executes every
notebook with its ``Execute`` preprocessor, in ``autograde`` and in Validate (``nbgrader
validate``, the Validate button, ``nbgrader.validator.Validator``) alike; ``Execute``
(nbclient) starts the kernel with a kernel manager built from nbgrader's config, whose
``client_factory`` is configurable. :class:`StdoutKernelClient` is that client: its IOPub
channel turns each ``stderr`` stream message into a ``stdout`` one, every line marked
with :data:`PREFIX`, before nbclient writes it into the notebook. A preprocessor would
not do: ``Validator.preprocessors`` is a fixed list, not a config option.

Exceptions are ``error`` outputs, left alone: a failing ``assert`` still costs the cell.
"""

from __future__ import annotations

from typing import Any

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from traitlets import Type

PREFIX = "[stderr] "


def _marked(text: str, at_line_start: bool) -> str:
    """``text`` with :data:`PREFIX` before each line it starts (its first one if ``at_line_start``)."""
    pieces = text.split("\n")
    return "\n".join(
        PREFIX + piece if piece and (i > 0 or at_line_start) else piece
        for i, piece in enumerate(pieces)
    )


def stderr_as_stdout(msg: dict[str, Any], mid_line: set[str]) -> dict[str, Any]:
    """Turn ``msg``, if a stderr stream message, into a marked stdout one, in place.

    ``mid_line`` holds the ids of the requests (cells) whose stderr text so far ends
    inside a line, so a line split across two messages is marked once.
    """
    content = msg.get("content", {})
    if msg.get("msg_type") != "stream" or content.get("name") != "stderr":
        return msg
    parent = msg.get("parent_header", {}).get("msg_id", "")
    text = content.get("text", "")
    content["text"] = _marked(text, at_line_start=parent not in mid_line)
    content["name"] = "stdout"
    if text.endswith("\n"):
        mid_line.discard(parent)
    elif text:
        mid_line.add(parent)
    return msg


class StdoutIOPubChannel(AsyncZMQSocketChannel):
    """The IOPub channel of :class:`StdoutKernelClient`: stderr streams arrive as stdout."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._mid_line: set[str] = set()

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:
        return stderr_as_stdout(await super().get_msg(timeout), self._mid_line)


class StdoutKernelClient(AsyncKernelClient):
    """nbclient's kernel client, except that what the kernel writes to stderr reads as stdout."""

    iopub_channel_class = Type(StdoutIOPubChannel)
