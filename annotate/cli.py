"""``annotate <command>``: one command per stage (the functions the Snakemake rules call,
``annotate.stages``), and ``run`` for the whole workflow.

    annotate run     [--config CFG] [--cores N] [--directory DIR] [TARGET ...] [-- SNAKEMAKE ARGS]
    annotate synth   --out ROOT [--sequence synth_000] [--config CFG] [overrides]
    annotate download [--config CFG] [--root ROOT] [--sequences S ...] [--base-url URL] [--cameras C ...]
    annotate ingest  --root ROOT --sequence NAME --out DIR [--config CFG]
    annotate triangulate --root ROOT --sequence NAME --ingest DIR --out DIR [--config CFG] [--workers N]
    annotate head-model --faces3d F [F ...] --out head_model.json [--config CFG]
    annotate label   --faces3d F --cameras F --model M --out DIR [--config CFG]
    annotate convert-labels --model head_model.json (--labels F --cameras F | --fits F) --out F
    annotate convert-calibration --from aniposelib|opencv FILE [FILE ...] --out calibration_<seq>.json --units mm|cm|m
    annotate audit   [--results DIR] [--sequences S ...] [--out DIR] [--model M] [--root ROOT] [--strict]
    annotate compare-labels [--whenet F] [--directmhp F] [--opal F] [--results DIR] [--audit DIR] [--out DIR]

Stages are chained only by the workflow (``Snakefile``): ``annotate run`` runs it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Start-up imports only what every command needs; each command imports the rest itself (the
# audit pandas, train torch), so ``annotate label`` and ``annotate --help`` start quickly.
from annotate.config import ConfigError, resolve_config, sequence_names, view_config


def _user_config(args) -> dict:
    """The ``--config`` file as written (an empty dict without one)."""
    import yaml

    base = yaml.safe_load(Path(args.config).read_text()) if args.config else {}
    if base is not None and not isinstance(base, dict):
        raise ConfigError(f"{args.config}: a config is a YAML mapping, got {type(base).__name__}")
    return base or {}


def _config(args, overrides: dict | None = None) -> dict:
    """The resolved config: ``--config`` with ``overrides`` (section -> key -> value; None
    values are left out) on top, defaults filled in."""
    base = _user_config(args)
    for section, values in (overrides or {}).items():
        values = {k: v for k, v in values.items() if v is not None}
        if values:
            base.setdefault(section, {}).update(values)
    return resolve_config(base)


def cmd_run(args) -> None:
    from annotate.stages.workflow import run_workflow

    config = _user_config(args) if args.config else None
    run_workflow(config, args.targets, cores=args.cores, workdir=args.directory, extra_args=args.snakemake_args,
                 capture=False)


def cmd_synth(args) -> None:
    from annotate.stages import synth

    cfg = _config(args, {"synthetic": {
        "seed": args.seed, "num_frames": args.frames, "num_cameras": args.cameras, "num_people": args.people,
        "render_video": False if args.no_video else None}})
    print(f"wrote {synth.run(cfg, args.out, args.sequence, n_jobs=args.jobs)}")


def cmd_ingest(args) -> None:
    from annotate.stages import ingest

    print(ingest.run(_config(args), args.root, args.sequence, args.out))


def cmd_head_model(args) -> None:
    from annotate.stages import head_model

    model = head_model.run(_config(args), args.faces3d, args.out)
    print(f"head model from {model.faces_used} faces -> {args.out}")


def cmd_label(args) -> None:
    from annotate.core.results import LABEL_FILES
    from annotate.stages import label

    print(label.run(_config(args), args.faces3d, args.cameras, args.model, args.out))
    print(f"labels: {Path(args.out) / LABEL_FILES['labels']}")


def _default_workers() -> int:
    from annotate.core.cpus import available_cpus

    return available_cpus()


def cmd_triangulate(args) -> None:
    from annotate.core.results import TRIANGULATE_FILES
    from annotate.stages import triangulate

    print(triangulate.run(_config(args), args.root, args.sequence, args.ingest, args.out, workers=args.workers))
    out = Path(args.out)
    print(f"faces3d: {out / TRIANGULATE_FILES['faces3d']}; detections: {out / TRIANGULATE_FILES['detections2d']}")


def cmd_convert_labels(args) -> None:
    from annotate.labels.convert import convert_head_fits, convert_labels
    from annotate.head.head_model import load_head_model

    model = load_head_model(args.model)            # a version-1 model is upgraded on load
    if args.fits:
        rows = convert_head_fits(args.fits, model, args.out)
    else:
        if not (args.labels and args.cameras):
            raise ValueError("convert-labels needs --labels and --cameras (or --fits)")
        rows = convert_labels(args.labels, args.cameras, model, args.out, view_config(_config(args)))
    print(f"converted {rows} rows to WHENet's zero pose -> {args.out}")


def cmd_convert_calibration(args) -> None:
    from annotate.panoptic.rigs import convert_calibration

    print(convert_calibration(args.source_format, args.inputs, args.out, args.units, names=args.names,
                              image_size=args.image_size))


def cmd_sync_offsets(args) -> None:
    from annotate.media.audio_sync import offsets_report, sequence_offsets

    seq_dir = Path(args.sequence_dir)
    print(offsets_report(seq_dir.name, sequence_offsets(seq_dir, args.reference, args.max_offset_s, args.duration_s)))


def cmd_audit(args) -> None:
    from annotate.audit.checks import AuditFailed, audit_summary

    cfg = _config(args)
    if args.results:
        cfg["results"] = args.results
    if args.strict:
        cfg["audit"]["strict"] = True
    from annotate.core.results import ResultsLayout
    from annotate.stages import audit

    sequences = args.sequences or sequence_names(cfg)
    out = args.out or str(ResultsLayout(cfg["results"]).audit)
    result = audit.run(cfg, cfg["results"], sequences, out, model_path=args.model, root=args.root)
    print(audit_summary(result.metrics))
    print(f"report: {Path(out) / 'report.html'}")
    if cfg["audit"]["strict"] and not result.passed:
        raise AuditFailed(f"{Path(out) / 'metrics.json'}: failed checks: "
                          + ", ".join(k for k, m in result.metrics["checks"].items() if m["passed"] is False))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="annotate", description="Full-range head-pose labels from Panoptic-format captures")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name, func, help_text):
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.add_argument("--config", help="YAML config (schemas/config.schema.yaml); defaults otherwise")
        sp.set_defaults(func=func)
        return sp

    sp = add("run", cmd_run, "run the workflow (the Snakefile) on a config: every stage, in order, resuming "
             "what is done; the same as snakemake --configfile CFG")
    sp.add_argument("targets", nargs="*", help="output files to make (default: the workflow's default target)")
    sp.add_argument("--cores", type=int, default=2)
    sp.add_argument("--directory", default=".", help="working directory (relative config paths, .snakemake/)")
    sp.add_argument("snakemake_args", nargs=argparse.REMAINDER,
                    help="after --: passed to snakemake as they are (e.g. -- --dry-run)")

    sp = add("synth", cmd_synth, "generate a synthetic Panoptic-format sequence")
    sp.add_argument("--out", required=True, help="root directory; the sequence goes to OUT/SEQUENCE")
    sp.add_argument("--sequence", default="synth_000")
    sp.add_argument("--seed", type=int)
    sp.add_argument("--frames", type=int)
    sp.add_argument("--cameras", type=int)
    sp.add_argument("--people", type=int)
    sp.add_argument("--no-video", action="store_true", help="skip rendering hdVideos/")
    sp.add_argument("--jobs", type=int, default=2, help="parallel render workers")

    sp = add("ingest", cmd_ingest, "read a Panoptic-layout sequence into Parquet tables")
    sp.add_argument("--root", required=True, help="directory holding the sequence folder")
    sp.add_argument("--sequence", required=True)
    sp.add_argument("--out", required=True)

    sp = add("head-model", cmd_head_model, "build the mean head model from faces3d tables")
    sp.add_argument("--faces3d", nargs="+", required=True)
    sp.add_argument("--out", required=True)

    sp = add("label", cmd_label, "fit heads and write per-camera labels for one sequence")
    sp.add_argument("--faces3d", required=True, help="the sequence's faces3d.parquet (ingest or triangulate)")
    sp.add_argument("--cameras", required=True, help="the sequence's cameras.parquet")
    sp.add_argument("--model", required=True, help="head_model.json (annotate head-model)")
    sp.add_argument("--out", required=True, help="output folder (head_fits, labels, subjects, summary)")

    sp = add("triangulate", cmd_triangulate, "detect 2D landmarks in every view and triangulate 3D faces "
             "(detect.backend in the config)")
    sp.add_argument("--root", required=True, help="directory holding the sequence folder")
    sp.add_argument("--sequence", required=True)
    sp.add_argument("--ingest", required=True, help="the sequence's ingest folder (cameras, bodies, faces3d tables)")
    sp.add_argument("--out", required=True)
    sp.add_argument("--workers", type=int, default=_default_workers(),
                    help="processes that detect the cameras' views (image backends; at most one per camera "
                         "and CPU; the results do not depend on it). Default: the available CPUs")

    sp = add("convert-labels", cmd_convert_labels, "convert labels or head fits of schema 1.x (eye-mouth zero "
             "pose) to 2.x (WHENet's zero pose); docs/conventions.md")
    sp.add_argument("--model", required=True, help="the head_model.json the 1.x files were made with")
    sp.add_argument("--labels", help="a labels.parquet of schema 1.x")
    sp.add_argument("--cameras", help="the sequence's cameras.parquet (the boxes are reprojected)")
    sp.add_argument("--fits", help="a head_fits.parquet of schema 1.x (instead of --labels)")
    sp.add_argument("--out", required=True)

    sp = sub.add_parser("convert-calibration", help="another rig's calibration -> calibration_<seq>.json",
                        description="Convert an aniposelib calibration.toml or OpenCV intrinsics/extrinsics files "
                                    "to a Panoptic calibration_<seq>.json (docs/captures.md)")
    sp.set_defaults(func=cmd_convert_calibration)
    sp.add_argument("--from", dest="source_format", required=True, choices=["aniposelib", "opencv"])
    sp.add_argument("inputs", nargs="+", help="aniposelib: calibration.toml; opencv: INTRINSICS EXTRINSICS "
                                              "[INTRINSICS EXTRINSICS ...], one pair per camera or one stereo pair")
    sp.add_argument("--out", required=True, help="calibration_<sequence>.json in the capture's folder")
    sp.add_argument("--units", required=True, choices=["mm", "cm", "m"],
                    help="length unit of the source's translations (the calibration board's)")
    sp.add_argument("--names", nargs="+", help="opencv: the cameras' names, in file order (default cam1, cam2, ...)")
    sp.add_argument("--image-size", nargs=2, type=int, metavar=("WIDTH", "HEIGHT"),
                    help="image size for files that store none (stereo pairs)")

    sp = sub.add_parser("sync-offsets", help="frame offsets of cameras started by hand, from their videos' sound",
                        description="Estimate ingest.frame_offsets of a capture whose cameras were not triggered "
                                    "together, by cross-correlating the sound of its videos (docs/captures.md)")
    sp.set_defaults(func=cmd_sync_offsets)
    sp.add_argument("sequence_dir", help="the capture's folder (hdVideos/hd_<camera>.mp4)")
    sp.add_argument("--reference", help="the camera whose pictures are the frames (offset 0; default: the first)")
    sp.add_argument("--max-offset-s", type=float, default=60.0, help="largest offset looked for, seconds")
    sp.add_argument("--duration-s", type=float, default=300.0, help="seconds of sound read from each video's start")

    sp = add("audit", cmd_audit, "audit the labels of a results folder: report.html, metrics.json, flags.parquet")
    sp.add_argument("--results", help="the pipeline's results folder (results/<sequence>/...; default: the config's)")
    sp.add_argument("--sequences", nargs="*", help="sequences to audit (default: those of the config)")
    sp.add_argument("--out", help="output folder (default RESULTS/audit)")
    sp.add_argument("--model", help="head_model.json (default RESULTS/head_model.json)")
    sp.add_argument("--root", help="folder holding the sequence folders, for the video sync check "
                                   "(default: the config's)")
    sp.add_argument("--strict", action="store_true", help="exit with status 1 when a check fails (a gate)")

    from annotate.stages.compare_labels import add_commands as add_compare_commands   # compare-labels
    from annotate.train.commands import add_commands as add_train_commands   # train, evaluate

    add_compare_commands(sub)

    add_train_commands(sub)
    from annotate.stages.download import add_commands as add_download_commands   # download

    add_download_commands(sub)
    return p


def _raised_by(err: BaseException, module: str, name: str) -> bool:
    """``err`` is ``module.name`` (an ``AuditFailed`` or ``WorkflowError``, which only a command
    that imported its module can raise, so it is looked up without importing it)."""
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(err, getattr(loaded, name))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "snakemake_args", None) and args.snakemake_args[0] == "--":
        args.snakemake_args = args.snakemake_args[1:]
    try:
        args.func(args)
    except Exception as err:
        if _raised_by(err, "annotate.audit.checks", "AuditFailed") or \
                _raised_by(err, "annotate.stages.workflow", "WorkflowError"):
            print(f"annotate {args.command}: {err}", file=sys.stderr)
            return 1
        if isinstance(err, (ConfigError, FileNotFoundError, ValueError)):
            print(f"annotate {args.command}: error: {err}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
