"""Images a traced call sends are stored (bytes and type), shown as Braintrust attachment
references by `traces show --json`, and saved to files by `--save-attachments`."""

from __future__ import annotations

import json
from pathlib import Path

from support.runner import User, report

# The smallest PNG: 1x1, transparent.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082"
)

VISION_APP = f"""
import json
import ollama
from braintrust_ollama import init_local_logger, setup_ollama

init_local_logger("vision")
setup_ollama()
reply = ollama.chat(
    model="llava",
    messages=[{{"role": "user", "content": "What is in this picture?", "images": [{PNG!r}]}}],
)
print(json.dumps({{"answer": reply["message"]["content"]}}))
"""


def test_an_image_round_trips_through_the_store(user: User, tmp_path: Path) -> None:
    report(user.run_python(VISION_APP))

    shown = user.cli("traces", "show", "last", "--json")
    assert shown.returncode == 0, shown.stderr
    (chat,) = json.loads(shown.stdout)
    (message,) = chat["input"]
    reference = (
        message["images"][0]
        if "images" in message
        else next(p["image_url"]["url"] for p in message["content"] if p["type"] == "image_url")
    )  # Braintrust's chat schema puts images in content parts; older shapes under "images"
    assert reference["type"] == "braintrust_attachment"
    assert reference["content_type"] == "image/png"
    assert reference["filename"].endswith(".png")
    assert "Attachment object" not in shown.stdout

    stored = user.store.attachment(reference["key"])
    assert stored is not None and stored.data == PNG and stored.content_type == "image/png"

    saved = user.cli("traces", "show", "last", "--save-attachments", str(tmp_path / "out"))
    assert saved.returncode == 0, saved.stderr
    path = tmp_path / "out" / f"{reference['key']}-{reference['filename']}"
    assert saved.stderr == f"braintrust-ollama: saved {path}\n"
    assert path.read_bytes() == PNG
