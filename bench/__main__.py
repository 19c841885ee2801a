"""python -m bench [--quick] [--only PART,...]: run the benchmarks, print and save the tables.

Raw figures go to bench/results.json (a part run alone replaces only its own entry) and the
tables to bench/results.md, rendered from all entries.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime

from bench import machine, results
from bench.common import PROJECT

PARTS = ("kernels", "training", "evaluation", "interactive", "inference", "dashboard", "protocol",
         "steadiness")  # fmt: skip
# "protocol" (full 10-epoch runs, ~30 min) and "steadiness" (waits for a quiet machine, then
# ~10 min of fresh training processes) only when asked for
DEFAULT_PARTS = PARTS[:6]
RESULTS_JSON = PROJECT / "bench" / "results.json"
RESULTS_MD = PROJECT / "bench" / "results.md"
# (full, quick) settings of every part
SETTINGS = {
    "kernels": ({}, {}),
    "training": ({"epochs": 3, "rounds": 1, "limit": None}, {"epochs": 2, "rounds": 1, "limit": 6400}),
    "evaluation": ({"repeats": 3}, {"repeats": 1}),
    "interactive": ({"calls": 200, "reference_calls": 50}, {"calls": 50, "reference_calls": 10}),
    "inference": ({"calls": 200, "repeats": 2}, {"calls": 50, "repeats": 1}),
    "dashboard": ({"rounds": 5, "clicks": 15}, {"rounds": 1, "clicks": 3}),  # medians of 5 / 15: single ones vary by 20%
    "protocol": ({"epochs": 10, "batch_sizes": [32, 128]}, {"epochs": 1, "batch_sizes": [32, 128]}),
    "steadiness": ({"processes": 6, "warmup": 100, "timed": 600, "wait_s": 1500},
                   {"processes": 2, "warmup": 50, "timed": 150, "wait_s": 0}),
}  # fmt: skip


def _parts(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in names if p not in PARTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown part(s) {', '.join(unknown) or text!r}; choose from {', '.join(PARTS)}"
        )
    return names


def run_part(name: str, settings: dict, log) -> dict:
    from core.models import MODEL_NAMES

    if name == "kernels":
        from bench.common import run_json

        return {onednn: run_json(["-m", "bench.kernels", onednn]) for onednn in ("0", "1")}
    if name == "training":
        from bench import training

        return training.run(list(MODEL_NAMES), settings["epochs"], settings["rounds"],
                            settings["limit"], log)  # fmt: skip
    if name == "evaluation":
        from bench import inference

        return inference.evaluation(settings["repeats"])
    if name == "interactive":
        from bench import inference

        return inference.interactive(settings["calls"], settings["reference_calls"])
    if name == "inference":
        from bench import inference

        return inference.engines(settings["calls"], settings["repeats"])
    if name == "dashboard":
        from bench import dashboard

        return dashboard.run(settings["rounds"], settings["clicks"], log)
    if name == "steadiness":
        from bench import steadiness

        return steadiness.run(settings["processes"], settings["warmup"], settings["timed"],
                              settings["wait_s"], log)  # fmt: skip
    from bench import training

    return training.protocol(list(MODEL_NAMES), settings["epochs"], settings["batch_sizes"], log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        type=_parts,
        default=list(DEFAULT_PARTS),
        metavar="PART,...",
        help=f"parts to run, from {', '.join(PARTS)} (default: all but protocol and steadiness)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="shorter runs (a few minutes; training on 6,400 images per epoch)",
    )
    parser.add_argument("--no-save", action="store_true",
                        help="print the tables only; leave bench/results.* alone")  # fmt: skip
    args = parser.parse_args(argv)

    saved = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.is_file() else {}
    about = machine.describe()
    print(f"{about['cpu']}, {about['cores']} cores; {about['peak_assumption']}", file=sys.stderr)
    for name in args.only:
        settings = SETTINGS[name][args.quick]
        print(f"{name} ({'quick' if args.quick else 'full'}: {settings}) ...", file=sys.stderr)
        start = time.perf_counter()
        result = run_part(name, settings, lambda text: print(text, file=sys.stderr, flush=True))
        saved[name] = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": args.quick,
            "settings": settings,
            "seconds": round(time.perf_counter() - start, 1),
            "load_1min_end": round(os.getloadavg()[0], 2),
            "machine": about,
            "result": result,
        }
        print(f"{name}: done in {saved[name]['seconds']:.0f} s", file=sys.stderr)
    if RESULTS_JSON.is_file():  # parts saved by another run meanwhile stay
        saved = {**json.loads(RESULTS_JSON.read_text()), **{n: saved[n] for n in args.only}}
    text = results.render(saved, about)
    print(text)
    if not args.no_save:
        RESULTS_JSON.write_text(json.dumps(saved, indent=1) + "\n")
        RESULTS_MD.write_text(text)
        print(f"saved {RESULTS_MD.relative_to(PROJECT)} and {RESULTS_JSON.name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
