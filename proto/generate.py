"""Regenerate `proto/envelope_pb2.py` and `proto/gateway_pb2.py` (and their `.pyi` stubs) from the
`.proto` files beside them.

Run from anywhere:  python -m proto.generate
The test suite compiles the schema again and fails when the committed code is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

PROTO_DIR = Path(__file__).resolve().parent
REPO_ROOT = PROTO_DIR.parent
SCHEMAS = ["proto/envelope.proto", "proto/gateway.proto"]


def compile_protos(out_dir: Path, *, descriptor_set: Path | None = None) -> None:
    """Compile the schemas into `out_dir` (Python code) or a descriptor set file."""
    args = ["grpc_tools.protoc", f"-I{REPO_ROOT}"]
    if descriptor_set is not None:
        args.append(f"--descriptor_set_out={descriptor_set}")
    else:
        args += [f"--python_out={out_dir}", f"--pyi_out={out_dir}"]
    args += [str(REPO_ROOT / s) for s in SCHEMAS]
    code = protoc.main(args)
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code} for {SCHEMAS}")


def main() -> int:
    compile_protos(REPO_ROOT)
    print(f"generated Python code for {', '.join(SCHEMAS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
