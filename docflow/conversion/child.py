"""The conversion child: ``python -m docflow.conversion.child`` renders one
document, read from stdin, under hard limits it sets on itself before it reads a
byte: CPU seconds (``RLIMIT_CPU``: the kernel ends it with SIGXCPU), address space
(``RLIMIT_AS``: allocations fail, reported as ``memory``), wall seconds (an alarm
whose default action ends it, a second bound beside the parent's kill), no core
files, and a lower scheduling priority (``os.nice``), so it cannot starve the
workers that send good letters.

Arguments: ``--media-type``, ``--max-pages``, ``--cpu-seconds``,
``--memory-bytes``, ``--wall-seconds``, ``--nice``. Answer on stdout: one JSON line
(``status`` ok, limit or failed; ``limit`` pages or memory; ``code``; ``refused``;
``pages``: the PDF's, or the page being laid out when stopped), then the PDF's
bytes when ``status`` is ok. Nothing about the content is ever written to stderr
or logged. Imports no Django and touches no database.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import resource
import signal
import sys


def _limit_self(args: argparse.Namespace) -> None:
    cpu = max(1, math.ceil(args.cpu_seconds))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (args.memory_bytes, args.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.alarm(max(1, math.ceil(args.wall_seconds)) + 1)
    if args.nice:
        os.nice(args.nice)


def _answer(header: dict, body: bytes = b"") -> None:
    out = sys.stdout.buffer
    out.write(json.dumps(header).encode() + b"\n")
    out.write(body)
    out.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="docflow.conversion.child")
    parser.add_argument("--media-type", required=True)
    parser.add_argument("--max-pages", type=int, required=True)
    parser.add_argument("--cpu-seconds", type=float, required=True)
    parser.add_argument("--memory-bytes", type=int, required=True)
    parser.add_argument("--wall-seconds", type=float, required=True)
    parser.add_argument("--nice", type=int, default=10)
    args = parser.parse_args(argv)
    _limit_self(args)
    # WeasyPrint's warnings quote the content: nothing of it leaves this process
    # (records still reach the filters that count pages and refusals).
    logging.getLogger().addHandler(logging.NullHandler())
    logging.getLogger("weasyprint").propagate = False
    refused: list = []
    try:
        content = sys.stdin.buffer.read()
        from docflow.conversion import (
            ConversionFailed,
            PageLimitExceeded,
            html_to_pdf,
            image_to_pdf,
        )

        try:
            if args.media_type == "text/html":
                pdf = html_to_pdf(content, max_pages=args.max_pages, refused=refused)
            else:
                pdf = image_to_pdf(content, max_pages=args.max_pages)
            from pypdf import PdfReader

            pages = len(PdfReader(io.BytesIO(pdf)).pages)
        except PageLimitExceeded as exceeded:
            _answer(
                {
                    "status": "limit",
                    "limit": "pages",
                    "code": exceeded.code,
                    "pages": exceeded.reached,
                }
            )
            return 0
        except ConversionFailed as failed:
            if isinstance(failed.__cause__, MemoryError):
                raise MemoryError from None
            _answer({"status": "failed", "code": failed.code, "message": str(failed)})
            return 0
    except MemoryError:
        # Free what can be freed so the answer itself can be written.
        content = pdf = None
        _answer({"status": "limit", "limit": "memory", "code": "memory"})
        return 0
    _answer(
        {
            "status": "ok",
            "pages": pages,
            "refused": [resource_.as_dict() for resource_ in refused],
        },
        pdf,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
