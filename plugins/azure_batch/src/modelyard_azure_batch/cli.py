"""``modelyard batch``: submit a JSONL file of requests as an Azure OpenAI batch and follow it.

``modelyard batch submit requests.jsonl --model <deployment> [--wait] [--output out.jsonl]``
validates the file (every problem with its line; nothing is uploaded when one is found), sets
each line's ``body.model`` to ``--model``, uploads, waits for the file to be processed, creates
the batch and prints its id. With ``--wait`` (implied by ``--output``) it polls and shows
completed/failed requests on stderr until the batch ends, then downloads the output (and, with
``--errors``, the error file). The connection comes from the usual ``AZURE_*`` variables or the
flags. ``modelyard batch validate requests.jsonl`` only checks the file.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import IO, Any

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


def setup(parser: argparse.ArgumentParser) -> None:
    """Add ``submit`` and ``validate`` to the ``batch`` command."""
    sub = parser.add_subparsers(dest="batch_command", required=True)
    p = sub.add_parser("submit", help="validate, upload and start a batch; optionally wait and download")
    p.add_argument("file", help="the JSONL file of requests")
    p.add_argument("--model", help="the batch deployment; replaces body.model on every line")
    p.add_argument("--endpoint", default="/v1/chat/completions", help="the batch endpoint (default %(default)s)")
    p.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE", help="a label (repeatable)")
    p.add_argument("--wait", action="store_true", help="wait for the batch to end, showing progress")
    p.add_argument("--output", help="write the output file here (implies --wait)")
    p.add_argument("--errors", help="write the error file here, if there is one (implies --wait)")
    p.add_argument("--poll", type=float, default=5.0, help="seconds between status checks (default %(default)s)")
    p.add_argument("--api-base", help="the resource endpoint (default: AZURE_API_BASE)")
    p.add_argument("--api-version", help="the api-version (default: AZURE_API_VERSION, else the plugin's default)")
    p.add_argument("--api-key", help="the key (default: AZURE_API_KEY; prefer the variable to a flag)")
    p = sub.add_parser("validate", help="check a JSONL batch file without uploading it")
    p.add_argument("file", help="the JSONL file of requests")


def run(args: argparse.Namespace) -> int:
    """Run ``batch submit`` or ``batch validate``; returns the exit status."""
    if args.batch_command == "validate":
        return _validate(args)
    return _submit(args)


def _report(path: str) -> tuple[Any, IO[bytes] | None]:
    from .jsonl import validate_batch_file

    try:
        file: IO[bytes] = open(path, "rb")  # noqa: SIM115  (closed by the caller)
    except OSError as exc:
        print(f"error: cannot open {path}: {exc.strerror}", file=sys.stderr)
        return None, None
    report = validate_batch_file(file, max_errors=50)
    if not report.ok:
        print(f"error: {path} is not a valid batch file ({report.error_count} problems); nothing was uploaded:",
              file=sys.stderr)  # fmt: skip
        for problem in report.errors:
            print(f"  {path}:{problem}" if problem.line else f"  {path}: {problem}", file=sys.stderr)
        if report.error_count > len(report.errors):
            print(f"  ... and {report.error_count - len(report.errors)} more", file=sys.stderr)
        file.close()
        return report, None
    return report, file


def _validate(args: argparse.Namespace) -> int:
    report, file = _report(args.file)
    if file is None:
        return 2
    file.close()
    print(f"{args.file}: {report.lines} requests for model {report.model!r}, url {report.url!r}: valid")
    return 0


def _progress(batch: Any) -> None:
    counts = batch.request_counts or {}
    total, done, failed = counts.get("total", 0), counts.get("completed", 0), counts.get("failed", 0)
    width = 30
    filled = int(width * (done + failed) / total) if total else 0
    bar = "#" * filled + "." * (width - filled)
    print(f"\r[{bar}] {done + failed}/{total}  completed {done}  failed {failed}  {batch.status:<11}",
          end="", file=sys.stderr, flush=True)  # fmt: skip


def _submit(args: argparse.Namespace) -> int:
    import modelyard

    from .jsonl import rewrite_model

    metadata: dict[str, str] = {}
    for item in args.metadata:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"error: --metadata takes KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        metadata[key] = value
    report, file = _report(args.file)
    if file is None:
        return 2
    conn = {"api_base": args.api_base, "api_version": args.api_version, "api_key": args.api_key}
    try:
        upload: IO[bytes] = file
        if args.model and args.model != report.model:
            upload = rewrite_model(file, args.model)
            file.close()
        try:
            created = modelyard.create_file(file=(args.file.rsplit("/", 1)[-1], upload), purpose="batch", **conn)
        finally:
            upload.close()
        print(f"uploaded {args.file} as {created.id} ({report.lines} requests)", file=sys.stderr)
        while created.status not in (None, "processed", "error", "uploaded"):
            time.sleep(args.poll)
            created = modelyard.file_retrieve(created.id, **conn)
        if created.status == "error":
            print(f"error: Azure could not process {created.id}: {created.status_details}", file=sys.stderr)
            return 1
        batch = modelyard.create_batch(
            input_file_id=created.id, endpoint=args.endpoint, completion_window="24h",
            metadata=metadata or None, **conn,
        )  # fmt: skip
        print(batch.id)
        if not (args.wait or args.output or args.errors):
            return 0
        while batch.status not in TERMINAL:
            _progress(batch)
            time.sleep(args.poll)
            batch = modelyard.retrieve_batch(batch.id, **conn)
        _progress(batch)
        print(file=sys.stderr)
        if batch.status == "failed" and batch.errors:
            for problem in batch.errors.get("data") or []:
                line = f" line {problem.get('line')}:" if problem.get("line") else ""
                print(f"  {problem.get('code')}:{line} {problem.get('message')}", file=sys.stderr)
        if args.output and batch.output_file_id:
            modelyard.file_content(batch.output_file_id, **conn).write_to_file(args.output)
            print(f"output written to {args.output}", file=sys.stderr)
        if args.errors and batch.error_file_id:
            modelyard.file_content(batch.error_file_id, **conn).write_to_file(args.errors)
            print(f"errors written to {args.errors}", file=sys.stderr)
        return 0 if batch.status == "completed" else 1
    except modelyard.ModelyardError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 2
