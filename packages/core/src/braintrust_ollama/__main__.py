"""`python -m braintrust_ollama`: the `braintrust-ollama` command."""

import sys

from braintrust_ollama.cli import main

sys.exit(main())
