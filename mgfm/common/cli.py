"""``mgfm content record ARTIFACT RECORD``: the content record of an artifact a rule just made
(``mgfm.common.content``)."""

from __future__ import annotations

import argparse
import logging


def _record(args: argparse.Namespace) -> None:
    from mgfm.common.content import write_record

    record = write_record(args.artifact, args.record)
    logging.getLogger("mgfm.content").info("content record of %s: sha256 %s (%d file(s)) -> %s", args.artifact,
                                           record["sha256"][:16], len(record["files"]), args.record)


def register(subparsers) -> None:
    p = subparsers.add_parser("content", help="content records of large artifacts (what later steps depend on)")
    sub = p.add_subparsers(dest="content_command", required=True)
    r = sub.add_parser("record", help="hash an artifact (file or folder) and write its content record")
    r.add_argument("artifact", help="the file or folder a rule made")
    r.add_argument("record", help="its record JSON ({results}/content/<artifact path>.json)")
    r.set_defaults(func=_record)
