"""``python -m medsora.reader_study create | serve | results``: a blinded reader study in the browser.

    python -m medsora.reader_study create --real data/test --fake samples/ --out study.db --n 100
    python -m medsora.reader_study serve study.db              # http://127.0.0.1:8080
    python -m medsora.reader_study results study.db --out study_results/
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from medsora.config.search import add_config_dir_argument, config_dir, find_config, use_config_dirs

__all__ = ["main", "build_parser", "DEFAULT_QUESTIONS"]

DEFAULT_QUESTIONS = config_dir() / "study" / "realism.yaml"
"""The shipped question file (installed with the package, like every shipped config)."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m medsora.reader_study",
                                description="A blinded reader study: real vs generated clips, rated in a browser.")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create", help="draw a balanced, shuffled set of clips into a study database")
    c.add_argument("--real", required=True, type=Path, help="real clips: a folder (searched recursively) or manifest.jsonl")
    c.add_argument("--fake", required=True, type=Path, help="generated clips: a folder or manifest.jsonl")
    c.add_argument("--out", required=True, type=Path, help="the study database to write (STUDY.db; never overwritten)")
    c.add_argument("--n", type=int, default=100, help="number of clips, half real and half generated (default 100)")
    c.add_argument("--questions", default="realism",
                   help="question file: a path, or NAME of study/NAME.yaml on the config search path (default realism)")
    add_config_dir_argument(c)
    c.add_argument("--seed", type=int, default=0, help="seed of the draw and of every reader's order (default 0)")
    c.add_argument("--per-modality", action="store_true",
                   help="balance real/generated within each modality (folder name, manifest or samples.json label)")
    c.add_argument("--size", type=int, default=256, help="side of the square clips shown, even (default 256)")
    c.add_argument("--frames", type=int, default=16, help="frames per clip, from the middle of each source (default 16)")
    c.add_argument("--fps", type=int, default=8, help="playback rate of every clip (default 8)")
    c.add_argument("--crf", type=int, default=18, help="H.264 quality, lower is better (default 18)")
    c.add_argument("--title", default="Reader study", help="title shown on the page")
    c.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    s = sub.add_parser("serve", help="serve the study to readers in a browser")
    s.add_argument("db", type=Path, help="the study database")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    r = sub.add_parser("results", help="accuracy, realism and agreement → JSON, markdown, plot")
    r.add_argument("db", type=Path, help="the study database")
    r.add_argument("--out", required=True, type=Path, help="folder for results.json, results.md, results.png")
    r.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")
    return p


def _create(args) -> None:
    from medsora.reader_study.create import StudySpec, create_study, describe
    from medsora.reader_study.questions import load_questions

    use_config_dirs(args.config_dir)
    questions = Path(args.questions).expanduser()
    if not questions.is_file():
        questions = find_config("study", args.questions, "--questions", file_hint="--questions path/to/questions.yaml")
    spec = StudySpec(real=args.real, fake=args.fake, out=args.out, questions=load_questions(questions), n=args.n,
                     seed=args.seed, per_modality=args.per_modality, size=args.size, frames=args.frames,
                     fps=args.fps, crf=args.crf, title=args.title)
    report = create_study(spec, progress=not args.no_progress)
    print(describe(report, args.out))


def _results(args) -> None:
    from medsora.reader_study.results import markdown, write_results

    if not 0.5 <= args.level < 1:
        raise ValueError(f"--level {args.level}: a confidence level in [0.5, 1), e.g. 0.95")
    report = write_results(args.db, args.out, args.level)
    print(markdown(report))
    print(f"-> {args.out / 'results.json'}, results.md, results.png")


def main(argv: Optional[Sequence[str]] = None) -> int:
    from medsora.reader_study.db import StudyError
    from medsora.reader_study.questions import QuestionError

    args = build_parser().parse_args(argv)
    try:
        if args.command == "create":
            _create(args)
        elif args.command == "serve":
            from medsora.reader_study.serve import serve

            serve(args.db, args.host, args.port)
        else:
            _results(args)
    except (StudyError, QuestionError, ValueError, FileNotFoundError) as err:
        print(f"medsora.reader_study: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from medsora.cli import run_cli

    raise SystemExit(run_cli(main, "medsora.reader_study"))
