"""Make `docker compose` available to the docker CLI on a machine that has only the client.

The Compose v2 CLI plugin is a Go program published as a Go module, so we build it from the Go module
proxy (`go mod download`, then `go build` inside the downloaded module: `go install pkg@version` refuses
modules whose go.mod has `exclude` directives, and compose's has). Everything lands in `.cache/go/`
(git-ignored); the binary is linked to `~/.docker/cli-plugins/docker-compose`, where the docker CLI
looks for plugins. A cold build takes about two minutes on two cores; later runs reuse the binary.
`scripts/test.sh` starts it in the background for a full run.

    python -m tests.deploy.compose_plugin      # build (if needed) and link; prints the plugin path
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

from common.config import REPO_ROOT

COMPOSE_MODULE = "github.com/docker/compose/v2"
COMPOSE_VERSION = "v2.40.3"
GO_CACHE = REPO_ROOT / ".cache" / "go"
PLUGIN_BINARY = GO_CACHE / "bin" / f"docker-compose-{COMPOSE_VERSION}"
CLI_PLUGIN = Path.home() / ".docker" / "cli-plugins" / "docker-compose"


class ComposeUnavailableError(RuntimeError):
    """`docker compose` cannot be made to work here; the message says why."""


def compose_works() -> bool:
    proc = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=60)
    return proc.returncode == 0


def _go_env() -> dict[str, str]:
    return {
        **os.environ,
        "GOPATH": str(GO_CACHE),
        "GOMODCACHE": str(GO_CACHE / "mod"),
        "GOCACHE": str(GO_CACHE / "build"),
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-mod=mod",
    }


def build_plugin(timeout_s: float = 900.0) -> Path:
    """Build the compose plugin into the cache (once; a lock keeps concurrent runs from racing)."""
    if PLUGIN_BINARY.exists():
        return PLUGIN_BINARY
    go = shutil.which("go")
    if go is None:
        raise ComposeUnavailableError(
            "the compose plugin is missing and there is no Go toolchain to build it from the Go module proxy"
        )
    GO_CACHE.mkdir(parents=True, exist_ok=True)
    with open(GO_CACHE / ".compose-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if PLUGIN_BINARY.exists():
            return PLUGIN_BINARY
        env = _go_env()
        download = subprocess.run(
            [go, "mod", "download", "-json", f"{COMPOSE_MODULE}@{COMPOSE_VERSION}"],
            capture_output=True, text=True, env=env, timeout=timeout_s,
        )  # fmt: skip
        if download.returncode != 0:
            raise ComposeUnavailableError(f"go mod download failed:\n{download.stdout}{download.stderr}")
        module_dir = json.loads(download.stdout)["Dir"]
        partial = PLUGIN_BINARY.with_suffix(".partial")
        build = subprocess.run(
            [go, "build", "-trimpath", "-ldflags",
             f"-s -w -X {COMPOSE_MODULE}/internal.Version={COMPOSE_VERSION}", "-o", str(partial), "./cmd"],
            cwd=module_dir, capture_output=True, text=True, env=env, timeout=timeout_s,
        )  # fmt: skip
        if build.returncode != 0:
            raise ComposeUnavailableError(f"building the compose plugin failed:\n{build.stderr[-3000:]}")
        partial.rename(PLUGIN_BINARY)
    return PLUGIN_BINARY


def ensure_compose() -> Path | None:
    """Make `docker compose` work; return the plugin we linked (None when it already worked)."""
    if shutil.which("docker") is None:
        raise ComposeUnavailableError("no docker client on PATH")
    if compose_works():
        return None
    binary = build_plugin()
    CLI_PLUGIN.parent.mkdir(parents=True, exist_ok=True)
    if CLI_PLUGIN.is_symlink() or not CLI_PLUGIN.exists():
        # atomically: scripts/test.sh may be linking it from its background build at the same moment
        staged = CLI_PLUGIN.with_name(f".{CLI_PLUGIN.name}.{os.getpid()}")
        staged.unlink(missing_ok=True)
        staged.symlink_to(binary)
        staged.replace(CLI_PLUGIN)
    if not compose_works():
        raise ComposeUnavailableError(f"docker does not accept the plugin at {CLI_PLUGIN}")
    return CLI_PLUGIN


if __name__ == "__main__":
    print(ensure_compose() or "docker compose already works")
