"""Fetch OpenSearch from Maven Central and assemble a runnable node home from its pieces.

The integ-test-zip holds the server with only the transport module. The modules it lacks (painless, which
k-NN and analysis-common extend, and analysis-common, which gives the english analyzer and the
path_hierarchy tokenizer) are published as jars; the plugins (k-NN with the Lucene engine, neural-search)
as installable zips. This module is the one place the version is pinned.
"""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tbhns_opensearch.errors import ClusterError

OPENSEARCH_VERSION = "2.19.1"
"""Newest release whose core and k-NN and neural-search zips are all on Maven Central and that runs on Java 17."""
PLUGIN_VERSION = f"{OPENSEARCH_VERSION}.0"
POM = Path(str(resources.files("tbhns_opensearch.resources") / "opensearch-artifacts" / "pom.xml"))
_INSTALLED_MARKER = ".tbhns-installed"


@dataclass(frozen=True)
class Module:
    """A module published as jars that the integ-test-zip lacks."""

    name: str
    classname: str
    jar_prefixes: tuple[str, ...]
    extended_plugins: str = ""
    security_policy: str = ""


MODULES = (
    Module(
        name="lang-painless",
        classname="org.opensearch.painless.PainlessPlugin",
        jar_prefixes=("lang-painless-", "opensearch-scripting-painless-spi-", "antlr4-runtime-", "asm-"),
        security_policy='grant {\n  permission java.lang.RuntimePermission "createClassLoader";\n'
        '  permission java.lang.RuntimePermission "getClassLoader";\n};\n',
    ),
    Module(
        name="analysis-common",
        classname="org.opensearch.analysis.common.CommonAnalysisPlugin",
        jar_prefixes=("analysis-common-",),
        extended_plugins="lang-painless",
    ),
)
PLUGINS = ("opensearch-knn", "neural-search")
SECURITY_PLUGIN = "opensearch-security"
"""Installed only in the secure home (`install_home(secure=True)`): TLS on HTTP and transport, basic auth."""
ML_PLUGINS = {"opensearch-job-scheduler": "opensearch-job-scheduler", "opensearch-ml": "opensearch-ml-plugin"}
"""Installed only in the ML home (`install_home(ml=True)`), plugin folder -> Maven artifact: ML Commons (363 MB),
which hosts remote models (connectors) for the `text_embedding` processor and the `neural` query, and the job
scheduler it extends."""


def fetch_artifacts(cache_dir: Path) -> Path:
    """Download the pinned core zip, module jars and plugin zips with Maven into `cache_dir` (once).

    Example:
        >>> fetch_artifacts(Path("~/.cache/tbhns-opensearch").expanduser())  # doctest: +SKIP
    """
    target = cache_dir / "artifacts" / OPENSEARCH_VERSION
    if (target / _INSTALLED_MARKER).exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ClusterError(
            "Maven (mvn) is not on PATH; it fetches OpenSearch from Maven Central. "
            "Install it (e.g. `apt-get install maven`) or set OPENSEARCH_URL to an existing cluster."
        )
    target.mkdir(parents=True, exist_ok=True)
    command = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-Dopensearch.version={OPENSEARCH_VERSION}",
        f"-Dopensearch.plugin.version={PLUGIN_VERSION}",
        f"-DoutputDirectory={target}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise ClusterError(
            f"Maven could not fetch OpenSearch {OPENSEARCH_VERSION} from Maven Central: {' / '.join(tail)}. "
            "Check network access to Maven Central (or a mirror in ~/.m2/settings.xml)."
        )
    (target / _INSTALLED_MARKER).touch()
    return target


def fetch_plugin(cache_dir: Path, artifact_id: str) -> Path:
    """Download the zip of plugin `artifact_id` of the pinned release with Maven (once); return its path.

    Example:
        >>> fetch_plugin(Path("~/.cache/tbhns-opensearch").expanduser(), "opensearch-security")  # doctest: +SKIP
    """
    artifacts = fetch_artifacts(cache_dir)
    target = artifacts / f"{artifact_id}-{PLUGIN_VERSION}.zip"
    if target.exists():
        return target
    artifact = f"org.opensearch.plugin:{artifact_id}:{PLUGIN_VERSION}:zip"
    command = [
        str(shutil.which("mvn")),
        "-q",
        "-B",
        "dependency:copy",
        f"-Dartifact={artifact}",
        f"-DoutputDirectory={artifacts}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=artifacts)
    if result.returncode != 0 or not target.exists():
        tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
        raise ClusterError(f"Maven could not fetch {artifact} from Maven Central: {' / '.join(tail)}")
    return target


def install_home(cache_dir: Path, secure: bool = False, ml: bool = False) -> Path:
    """Return a ready OpenSearch home under `cache_dir`, fetching and assembling it on first use. `secure` adds
    the security plugin, `ml` ML Commons and the job scheduler; each combination is a home of its own (an
    installed security plugin must be configured, and ML Commons costs start-up time)."""
    flavor = "".join(suffix for suffix, wanted in (("-secure", secure), ("-ml", ml)) if wanted)
    home = cache_dir / "home" / f"opensearch-{OPENSEARCH_VERSION}{flavor}"
    if (home / _INSTALLED_MARKER).exists():
        return home
    artifacts = fetch_artifacts(cache_dir)
    extra = {SECURITY_PLUGIN: SECURITY_PLUGIN} if secure else {}
    extra |= ML_PLUGINS if ml else {}
    zips = {folder: fetch_plugin(cache_dir, artifact_id) for folder, artifact_id in extra.items()}
    staging = home.with_name(home.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    _unzip(artifacts / f"opensearch-{OPENSEARCH_VERSION}.zip", staging, strip_top_dir=True)
    for module in MODULES:
        _install_module(module, artifacts, staging / "modules" / module.name)
    for plugin in PLUGINS:
        _unzip(artifacts / f"{plugin}-{PLUGIN_VERSION}.zip", staging / "plugins" / plugin)
    for folder, archive in zips.items():
        _unzip(archive, staging / "plugins" / folder)
    for script in (staging / "bin").iterdir():
        script.chmod(0o755)
    (staging / _INSTALLED_MARKER).touch()
    shutil.rmtree(home, ignore_errors=True)
    staging.rename(home)
    return home


def _install_module(module: Module, artifacts: Path, directory: Path) -> None:
    directory.mkdir(parents=True)
    jars = [jar for jar in artifacts.glob("*.jar") if jar.name.startswith(module.jar_prefixes)]
    if not jars:
        raise ClusterError(f"no jars for module {module.name} in {artifacts}; delete that folder and start again")
    for jar in jars:
        shutil.copy2(jar, directory / jar.name)
    descriptor = {
        "description": f"{module.name} module (from Maven Central jars)",
        "version": OPENSEARCH_VERSION,
        "name": module.name,
        "classname": module.classname,
        "java.version": "11",
        "opensearch.version": OPENSEARCH_VERSION,
        "extended.plugins": module.extended_plugins,
        "has.native.controller": "false",
    }
    lines = [f"{key}={value}" for key, value in descriptor.items()]
    (directory / "plugin-descriptor.properties").write_text("\n".join(lines) + "\n")
    if module.security_policy:
        (directory / "plugin-security.policy").write_text(module.security_policy)


def _unzip(archive: Path, destination: Path, strip_top_dir: bool = False) -> None:
    if not archive.exists():
        raise ClusterError(f"missing artifact {archive}; delete {archive.parent} and start again to re-fetch")
    with zipfile.ZipFile(archive) as zipped:
        for member in zipped.infolist():
            name = member.filename.split("/", 1)[1] if strip_top_dir else member.filename
            if not name or member.is_dir():
                continue
            path = destination / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with zipped.open(member) as source, path.open("wb") as sink:
                shutil.copyfileobj(source, sink)
