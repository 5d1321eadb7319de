"""Stage ``download``: Panoptic sequences from the server into ``panoptic.root``
(``annotate.panoptic.download``; docs/download.md), and the ``annotate download`` command.

    annotate download [--config CFG] [--root ROOT] [--sequences S ...] [--base-url URL]
                      [--cameras 00_00 ...] [--no-videos]
"""
from __future__ import annotations

import sys
from pathlib import Path


def run(config: dict, root: str | Path, sequence: str, summary_path: str | Path | None = None) -> dict:
    """Fetch and verify ``root/sequence`` as the config's ``download`` section says, with
    the videos of ``ingest.cameras``; the summary is also written to ``summary_path``."""
    from annotate.config import download_settings
    from annotate.core.atomic import write_json_atomic
    from annotate.panoptic.download import download_sequence

    summary = download_sequence(root, sequence, download_settings(config), cameras=config["ingest"]["cameras"])
    if summary_path is not None:
        write_json_atomic(summary_path, summary, sort_keys=True)
    return summary


def format_summary(summary: dict) -> str:
    """A few lines: the folder, then one line per file and what happened to it."""
    lines = [f"download {summary['sequence']} -> {summary['folder']} (from {summary['base_url']})"]
    lines += [f"  {name}: {what}" for name, what in summary["files"].items()]
    lines.append(f"  manifest: {summary['manifest']}")
    return "\n".join(lines)


def cmd_download(args) -> None:
    """``annotate download``: every sequence asked for, one after the other. A failed
    download ends the command with its one-line message (URL and cause) and status 2."""
    from annotate.config import resolve_config
    from annotate.panoptic.fetch import DownloadError

    config = resolve_config(args.config)
    if args.base_url:
        config["download"]["base_url"] = args.base_url
    if args.cameras:
        config["ingest"]["cameras"] = list(args.cameras)
    if args.no_videos:
        config["download"]["videos"] = False
    root = args.root or config["panoptic"].get("root")
    sequences = args.sequences or config["panoptic"]["sequences"]
    if not root or not sequences:
        raise ValueError("annotate download needs --root and --sequences (or panoptic.root and panoptic.sequences "
                         "in --config)")
    for sequence in sequences:
        try:
            print(format_summary(run(config, root, sequence)))
        except DownloadError as err:
            print(f"annotate download: error: {err}", file=sys.stderr)
            raise SystemExit(2) from None


def add_commands(sub) -> None:
    """Register ``annotate download`` on the CLI's subparsers."""
    help_text = "fetch Panoptic sequences (calibration, hdPose3d/hdFace3d archives, HD videos) from the server"
    sp = sub.add_parser("download", help=help_text, description=help_text + "; docs/download.md")
    sp.add_argument("--config", help="YAML config (schemas/config.schema.yaml): download, ingest.cameras, panoptic")
    sp.add_argument("--root", help="folder that receives the sequence folders (default: the config's panoptic.root)")
    sp.add_argument("--sequences", nargs="+", help="sequence names (default: the config's panoptic.sequences)")
    sp.add_argument("--base-url", help="the server's dataset folder (default: the config's download.base_url)")
    sp.add_argument("--cameras", nargs="+", help="HD cameras whose videos to fetch, e.g. 00_03 00_12 "
                                                 "(default: the config's ingest.cameras)")
    sp.add_argument("--no-videos", action="store_true", help="fetch no videos")
    sp.set_defaults(func=cmd_download)
