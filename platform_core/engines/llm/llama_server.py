"""llama.cpp's own HTTP server (through xllamacpp), run as a child process of the platform.

Why a child process: creating `xllamacpp.Server` loads the model while holding Python's GIL, which
froze the platform's event loop (and the GUI sharing it) for 2.6 s; generation runs in llama.cpp's
own threads either way. A separate process also keeps a native crash in the engine from taking the
app down with it.

Protocol with the parent: the child prints `listening <address>` (or `error <message>`) on stdout,
then serves until its stdin closes, so it never outlives the platform.

    python -m platform_core.engines.llm.llama_server MODEL.gguf --threads 1 --context 2048 [--parallel N]
        [--api-key K] [--nice N [--nice-after-load]]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path
from typing import Any

from platform_core.engines.priority import lower_process_priority


def create_server(model_path: Path, threads: int, context: int, api_key: str = "", parallel: int = 1) -> Any:
    """The server; `context` tokens per slot, `parallel` slots (requests decoded together, in one batch)."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(model_path)
    params.model_alias = {model_path.stem}
    params.n_parallel = max(1, parallel)
    params.n_ctx = context * params.n_parallel  # llama.cpp splits n_ctx between the slots
    params.cpuparams.n_threads = threads
    # Prompt processing is short compute-bound bursts: it takes every core.
    params.cpuparams_batch.n_threads = max(threads, os.cpu_count() or 1)
    params.cache_prompt = True  # keep the KV cache of the previous prompt and reuse its common prefix
    params.cache_ram_mib = 256  # host-RAM copies of evicted prompts (tool-choice vs reply prompts)
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # llama.cpp binds a free port; listening_address reports it
    params.verbosity = 0
    if api_key:
        params.api_keys = [api_key]
    return xllamacpp.Server(params)


@functools.cache
def llguidance_grammars() -> bool:
    """Whether the bundled llama.cpp reads llguidance grammars (its JSON-schema grammars are written in it)."""
    import xllamacpp

    return str(xllamacpp.json_schema_to_grammar({"type": "string"})).startswith("%llguidance")


def die_with_parent() -> None:
    """Linux: SIGKILL this process when the platform dies, even while it is paused (SIGSTOP), when
    it could not read the EOF on stdin that otherwise ends it."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1  # fires when the parent's spawning thread ends: the platform's event loop thread
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl
        os._exit(0)


def main(argv: list[str] | None = None) -> int:
    die_with_parent()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--context", type=int, default=2048)
    parser.add_argument("--parallel", type=int, default=1, help="slots: requests served at once")
    parser.add_argument("--api-key", default="")
    parser.add_argument("--nice", type=int, default=0, help="lower the CPU priority (before any thread starts)")
    parser.add_argument("--nice-after-load", action="store_true", help="with --nice: load the model first")
    args = parser.parse_args(argv)
    if not args.nice_after_load:
        lower_process_priority(args.nice)
    try:
        server = create_server(args.model, args.threads, args.context, args.api_key, args.parallel)
    except Exception as exc:  # reported to the parent, which explains it to the user
        print(f"error {type(exc).__name__}: {exc}", flush=True)
        return 1
    if args.nice_after_load:
        lower_process_priority(args.nice)  # every thread the server started, and those they start later
    print(f"listening {server.listening_address}", flush=True)
    sys.stdin.read()  # returns at EOF: the platform closed the pipe or died
    os._exit(0)  # the server's threads never join on their own


if __name__ == "__main__":
    sys.exit(main())
