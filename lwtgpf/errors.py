"""The one error family for user mistakes and environment faults.

Every error a user can act on (a config value, a dataset folder, a checkpoint or weight file, a run
folder, a notebook parameter) is a `UserError`: its message is one line naming the file or key and what
was expected. The CLI prints it as `lwtgpf VERB: error: MESSAGE` and exits with code 2, without a
traceback (`--debug` shows it). Anything else that escapes is a bug and keeps its traceback.

`UserError` subclasses ValueError so that code written against the older ValueError-based errors keeps
working.
"""
from __future__ import annotations

import re

EXIT_USER_ERROR = 2  # a mistake in what the user gave, or the environment (disk full, missing file)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it

# torch's DataLoader re-raises a worker's exception as "Caught DatasetError in DataLoader worker
# process 0.\nOriginal Traceback (most recent call last):\n ...\nlwtgpf.data.records.DatasetError: msg"
_WORKER_WRAPPED = re.compile(r"^Caught \w+ in DataLoader worker process \d+\.\s*\nOriginal Traceback")
_LAST_LINE = re.compile(r"^(?:[\w.]+\.)?\w+(?:Error|Exception): (?P<message>.*)$")


class UserError(ValueError):
    """A mistake in what the user gave, or an environment fault; the message names the file or key."""


def user_message(error: BaseException) -> str:
    """The one line to show for `error`: its message, unwrapped from a DataLoader worker's traceback.

    OSError (disk full, permission denied, missing file) keeps errno text and the file name.
    """
    text = str(error)
    if _WORKER_WRAPPED.match(text):
        for line in reversed(text.strip().splitlines()):
            match = _LAST_LINE.match(line.strip())
            if match:
                text = match.group("message")
                break
    if isinstance(error, OSError) and error.strerror and error.filename:
        text = f"{error.filename}: {error.strerror}"
    return " ".join(text.split()) if "\n" in text else text
