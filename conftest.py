"""Project-level pytest configuration for this repository (the plugin itself is loaded via its entry point).

`pytest` runs the plugin's own tests (tests/); `pytest specs/` runs the example clip specs.
"""

import os

# Nothing in this repository may reach a model hub: weights come from local folders only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest_plugins = ["pytester"]
