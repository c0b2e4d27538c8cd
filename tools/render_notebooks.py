"""Render notebooks/*.py (jupytext percent scripts) to notebooks/build/*.ipynb with outputs.

``make notebooks`` runs this. The kernel talks to us over local IPC sockets in a private
temporary directory (not TCP without encryption), and the executed notebook is written
directly, so nothing warns about untrusted notebooks or plain-text transport.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import jupytext
import nbclient
import nbformat
from jupyter_client import KernelManager

ROOT = Path(__file__).resolve().parent.parent


def render(source: Path, target: Path) -> None:
    """Execute the notebook ``source`` (from the repository root) and write ``target``."""
    notebook = jupytext.read(source)
    with tempfile.TemporaryDirectory(prefix="gossipsim-kernel-") as sockets:
        manager = KernelManager(kernel_name="python3", transport="ipc", ip=f"{sockets}/kernel")
        client = nbclient.NotebookClient(
            notebook, km=manager, timeout=1800, resources={"metadata": {"path": str(ROOT)}}
        )
        try:
            client.execute()
        finally:
            if manager.has_kernel and manager.is_alive():
                manager.shutdown_kernel(now=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, target)


def main(argv: list[str]) -> int:
    sources = [Path(p) for p in argv] or sorted((ROOT / "notebooks").glob("*.py"))
    for source in sources:
        target = ROOT / "notebooks" / "build" / f"{source.stem}.ipynb"
        print(f"{source} → {target.relative_to(ROOT)}", flush=True)
        render(source, target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
