"""Runs the SDK natively against the bindings componentize-py generates
for the WIT (only the types are used: host functions need a component)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

SDK = Path(__file__).resolve().parent.parent
REPO = SDK.parent.parent


def _componentize_py() -> str:
    toolchains = Path(os.environ.get("WSSERVER_TOOLCHAINS", Path.home() / ".cache/wsserver/toolchains"))
    found = shutil.which("componentize-py") or shutil.which(
        "componentize-py", path=str(toolchains / "python/bin")
    )
    if found is None:
        raise RuntimeError("componentize-py not found: run sdk/python/install-toolchain.sh")
    return found


def pytest_configure(config):
    bindings = Path(config.cache.mkdir("wsserver-bindings"))
    subprocess.run(
        [_componentize_py(), "-d", str(REPO / "wit"), "-w", "stateful-plugin", "bindings", str(bindings)],
        check=True,
        capture_output=True,
    )
    sys.path[:0] = [str(bindings), str(SDK / "src")]
