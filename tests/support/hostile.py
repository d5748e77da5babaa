"""What a model, a server or an HTTP client can put into a span, to check that every view shows
it as text: never as terminal control sequences or rich markup, and never failing on it.

`write_hostile_trace(store)` (run in a process of its own: it sets up the local logger) logs one
trace through Braintrust's public API, as an instrumented app would, plus one row deeper than
Braintrust itself would nest, written to the store directly.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

# Every C0 control character, DEL and every C1 control character.
CONTROLS = "".join(map(chr, range(0x20))) + "\x7f" + "".join(map(chr, range(0x80, 0xA0)))
# What an attacker sends: clear the screen, set the window title, write the clipboard, a hidden
# hyperlink, a C1 CSI, a right-to-left override that reorders what follows, a line separator.
SEQUENCES = (
    "\x1b[2J\x1b]0;owned\x07\x1b]52;c;aGk=\x07\x1b]8;;https://evil.example\x1b\\click"
    "\x1b]8;;\x1b\\\x9b2J\u202eevil\u2028"
)
# rich markup: a closing tag with no opening one (an error), a hyperlink, styles, an emoji code.
MARKUP = "[/INST] summarise the thread [link=https://evil.example/phish]click[/link] [bold red]x[/]:warning:"
HOSTILE = f"{MARKUP} {CONTROLS}{SEQUENCES}"
LONG_NAME = "long" + "n" * 199_996  # 200,000 characters
UNDECODABLE_FILE_NAME = os.fsdecode(b"report-\xff.txt")  # a lone surrogate
DEEP_LEVELS = 900


def nested(levels: int) -> dict[str, Any]:
    """`{"k": {"k": ... {} }}`, `levels` deep."""
    top: dict[str, Any] = {}
    inner = top
    for _ in range(levels - 1):
        inner["k"] = {}
        inner = inner["k"]
    return top


def write_hostile_trace(store: Path) -> None:
    import braintrust
    from braintrust_ollama import init_local_logger
    from braintrust_ollama.local.store import LocalStore

    init_local_logger("hostile", path=store)
    with braintrust.start_span(name=f"root {HOSTILE}") as root:
        with root.start_span(name=LONG_NAME):
            pass
        with root.start_span(name=f"ollama.chat {MARKUP}", type="llm") as chat:
            chat.log(
                input=[{"role": "user", "content": HOSTILE}],
                output={"role": "assistant", "content": HOSTILE},
                metadata={"model": f"llama{HOSTILE}", "file": UNDECODABLE_FILE_NAME},
                metrics={"prompt_tokens": 12, "completion_tokens": 34, "tokens": 46},
            )
        try:
            with root.start_span(name=f"GET {SEQUENCES}"):
                raise ValueError(f"model said {HOSTILE}")
        except ValueError:
            pass
        root_span_id = root.root_span_id  # type: ignore[attr-defined]
        deep_parent = root.span_id  # type: ignore[attr-defined]
    braintrust.flush()
    # Deeper than Braintrust's logger nests (it cuts at its own depth): as deep as the store takes.
    LocalStore(store).append(
        [
            {
                "id": "deep-span",
                "span_id": "deep-span",
                "root_span_id": root_span_id,
                "span_parents": [deep_parent],
                "span_attributes": {"name": "deep", "type": "task"},
                "input": nested(DEEP_LEVELS),
                "metrics": {"start": time.time(), "end": time.time() + 0.001},
            }
        ]
    )


# rich's own styling (SGR: colours, bold, dim): the only escape sequence a view may print.
_SGR = re.compile(r"\x1b\[[0-9;]*m")
_UNSAFE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def unsafe_characters(shown: str, *, terminal: bool = False) -> list[str]:
    """The control characters in what a view printed, beside line ends (and, in a terminal,
    beside rich's own styling and the carriage returns the terminal adds)."""
    if terminal:
        shown = _SGR.sub("", shown).replace("\r\n", "\n")
    return sorted(set(_UNSAFE.findall(shown)))


if __name__ == "__main__":
    import sys

    write_hostile_trace(Path(sys.argv[1]))
