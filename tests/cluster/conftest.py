"""Fixtures of the cluster tests: the image and chart published to a local OCI registry
(tests/cluster/publish.py)."""

from __future__ import annotations

import sys
from pathlib import Path

# Same trick as tests/container/conftest.py: this folder is not a package, and putting
# it on sys.path makes `import publish` work under any pytest import mode.
HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from publish import coin_sync_image, oci_helm, published_chart, registry  # noqa: E402

__all__ = ["coin_sync_image", "oci_helm", "published_chart", "registry"]
