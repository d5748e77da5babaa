#!/usr/bin/env bash
# Re-record every core cassette against a live Ollama.
#
#   OLLAMA_HOST=http://127.0.0.1:11434 scripts/record_cassettes.sh          # the locked SDK (0.6)
#   OLLAMA_HOST=http://127.0.0.1:11434 scripts/record_cassettes.sh 0.4.0    # another SDK version
#
# Writes tests/cassettes/core/ollama-<major.minor of the SDK>/, one cassette per test in
# tests/core/test_recorded_*.py (hand-made cassettes are replaced by real ones). The models the
# tests name must be pulled first:
#
#   ollama pull qwen3.6:latest && ollama pull llama3 && ollama pull llama3.1 \
#     && ollama pull gemma3:1b && ollama pull gemma3:4b && ollama pull all-minilm \
#     && ollama pull llama3.2 && ollama pull x/z-image-turbo && ollama pull systemone:latest
#
# The ollama 0.6.x surfaces (tests/core/test_{web,systemone,logprobs,image_generation}.py) are
# recorded too: logprobs needs an SDK >= 0.6.1, the image model >= 0.6.2, systemone >= 0.6.3,
# and web_search goes to https://ollama.com, so it needs OLLAMA_API_KEY (vcrpy filters the
# Authorization header out of the cassette; the key is never written).
#
# Then run the tests again without recording (`uv run pytest tests/core`) and update
# tests/cassettes/core/NOTICE.md: a re-recorded cassette is this project's, not a copy.
set -euo pipefail
cd "$(dirname "$0")/.."

export OLLAMA_HOST="${OLLAMA_HOST:-http://127.0.0.1:11434}"
export BRAINTRUST_OLLAMA_RECORD=1
with=()
if [[ $# -gt 0 && $1 != -* ]]; then
    with=(--with "ollama==$1")
    shift
fi
exec uv run "${with[@]}" pytest tests/core -k test_recorded_ "$@"
