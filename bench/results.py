"""bench/results.md from the saved results: a header, one section per part, then the targets."""

from __future__ import annotations

from bench.common import median, percentile
from bench.steadiness import CALM_STEAL, analysis, summarise

COMMAND = "python -m bench"


def _f(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _x(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio:.2f}×"


def _stamp(entry: dict) -> str:
    kind = "quick" if entry["quick"] else "full"
    return (f"_{kind} run, {entry['date']}, {entry['seconds']:.0f} s; settings {entry['settings']};"
            f" 1-minute load average at the end {entry['load_1min_end']}_")  # fmt: skip


def _flops(model: str) -> float | None:
    """Training FLOP per image, counted from the shipped model's layers."""
    try:
        from bench.common import default_runs
        from bench.flops import training_flop_per_image
        from core.predict import load_predictor

        return training_flop_per_image(load_predictor(default_runs()[model]))
    except Exception:  # no shipped run: no compute-limit column
        return None


def _macs_table() -> list[str]:
    from bench.common import default_runs
    from bench.flops import macs_per_image
    from core.predict import load_predictor

    lines = ["| model | MACs per image (forward) | by layer |", "|---|---|---|"]
    for model, run in default_runs().items():
        counts = macs_per_image(load_predictor(run))
        parts = ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in counts.items())
        lines.append(f"| {model} | {sum(counts.values()) / 1e6:.2f} M | {parts} |")
    return lines


def kernels_section(entry: dict) -> list[str]:
    res = entry["result"]
    lines = ["## 0. Where a training step's time goes: convolution kernels, batch 32, one core", "",
             _stamp(entry), "",
             "CPU milliseconds per call of TensorFlow's kernels (`python -m bench.kernels`), one "
             "thread, as installed and with oneDNN; the last column is OpenBLAS's product of the "
             "same size (numpy, one thread): what the arithmetic allows. The first layer's input "
             "gradient is never computed in training.", "",
             "| convolution | MACs per batch | as installed: fwd / input grad / filter grad ms | "
             "oneDNN: fwd / input grad / filter grad ms | oneDNN GFLOP/s | OpenBLAS GEMM GFLOP/s |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    totals: dict[str, list[float]] = {}
    for name, off in res["0"].items():
        on = res["1"][name]

        def three(d: dict) -> str:
            return " / ".join(
                _f(d["ms"].get(k), 2) for k in ("forward", "input_grad", "filter_grad")
            )

        flop = 2 * on["macs"] * len(on["ms"])
        gemm_flop = 2 * on["macs"]
        lines.append(f"| {name} | {on['macs'] / 1e6:.0f} M | {three(off)} | {three(on)} | "
                     f"{flop / sum(on['ms'].values()) / 1e6:.0f} | "
                     f"{gemm_flop / on['gemm_ms'] / 1e6:.0f} |")  # fmt: skip
        model = name.split()[0]
        total = totals.setdefault(model, [0.0, 0.0, 0.0])
        total[0] += sum(off["ms"].values())
        total[1] += sum(on["ms"].values())
        total[2] += on["gemm_ms"] * len(on["ms"])
    lines.append("")
    for model, (off, on, gemm) in totals.items():
        lines.append(f"- {model}: the convolutions of one training batch take {off:.1f} ms of one "
                     f"core as installed, {on:.1f} ms with oneDNN ({_x(on / off)}); as OpenBLAS "
                     f"products they would take {gemm:.1f} ms, before the im2col copies.")  # fmt: skip
    return lines


def training_section(entry: dict, peak: float | None, targets: list) -> list[str]:
    res = entry["result"]
    lines = ["## 1. Training throughput (batch 32, Adam, full training set unless quick)", "",
             _stamp(entry), "",
             "Each row is a median over the steady epochs (every epoch after the first) of "
             f"{res['rounds']} round(s) of {res['epochs']}-epoch runs, each in a fresh process, "
             "interleaved. **plain**: the report's `model.fit(x, y, epochs, batch_size=32, "
             "shuffle=True, verbose=0)`, TensorFlow as installed: the reference. **core**: "
             "`python -m core.train` itself, live log and per-epoch evaluation of the 10,000 "
             "test images included. **tuned**: plain fit with core.train's compute settings "
             "only (no live log, no test evaluation).", "",
             "| model | plain s/epoch (img/s) | core s/epoch (img/s) | **core ÷ plain** | tuned "
             "s/epoch | core ÷ tuned (monitoring overhead) | first epoch plain / core s | "
             "compute floor s/epoch | core's share of peak |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for model, data in res["models"].items():
        s = data["summary"]
        plain, core, tuned = s["plain"], s["core"], s["tuned"]
        images = core["images"]
        flop = _flops(model)
        floor = images * flop / (peak * 1e9) if flop and peak else None
        speed, overhead = core["steady_s"] / plain["steady_s"], core["steady_s"] / tuned["steady_s"]
        lines.append(
            f"| {model} | {_f(plain['steady_s'], 1)} ({images / plain['steady_s']:,.0f}) | "
            f"{_f(core['steady_s'], 1)} ({images / core['steady_s']:,.0f}) | **{_x(speed)}** | "
            f"{_f(tuned['steady_s'], 1)} | {_x(overhead)} | {_f(plain['first_s'], 1)} / "
            f"{_f(core['first_s'], 1)} | {_f(floor, 1)} | "
            f"{'–' if floor is None else format(floor / core['steady_s'], '.0%')} |"
        )
        targets.append((f"Training overhead of live log + monitoring, {model}", "≤ 1.05× tuned fit",
                        _x(overhead), overhead <= 1.05))  # fmt: skip
        targets.append((f"Epoch time, {model}", "< 1× plain fit (aim 0.6×)", _x(speed),
                        speed < 1 and (speed <= 0.6 or None)))  # fmt: skip
    lines += ["", "Every epoch, seconds (in run order):", ""]
    for model, data in res["models"].items():
        for variant, runs in data["runs"].items():
            text = "; ".join(", ".join(f"{s:.1f}" for s in r["epoch_seconds"]) for r in runs)
            lines.append(f"- {model} {variant}: {text}")
    if peak:
        lines += ["", "Compute floor: training FLOP per image (3 × forward, 2 FLOP per MAC) × "
                  "images ÷ peak FP32 rate; MACs counted from the layers:", "", *_macs_table()]  # fmt: skip
    return lines


def evaluation_section(entry: dict) -> list[str]:
    res = entry["result"]
    lines = ["## 2. Evaluation: the 10,000 test images", "", _stamp(entry), "",
             "Median seconds over the repeats, each way interleaved, in a fresh process per "
             "TensorFlow setting. Reference: Keras `model.predict(x)` (default batch 32) with "
             "TensorFlow as installed. core.train evaluates with `model.predict(x, "
             "batch_size=1000)` under oneDNN; the dashboard never evaluates the test set (it "
             "reads the stored probabilities), its numpy engine is shown for completeness.", "",
             "| model | Keras predict, batch 32 (reference) | batch 1000 | batch 32, oneDNN | "
             "**batch 1000, oneDNN (core.train)** | numpy engine |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for model in res["default"]:
        d, o = res["default"][model], res["onednn"][model]
        ref = median(d["keras_predict_b32"])

        def cell(values: list[float], bold: bool = False, ref: float = ref) -> str:
            text = f"{median(values):.2f} s ({_x(median(values) / ref)})"
            return f"**{text}**" if bold else text

        lines.append(f"| {model} | {ref:.2f} s | {cell(d['keras_predict_b1000'])} | "
                     f"{cell(o['keras_predict_b32'])} | {cell(o['keras_predict_b1000'], True)} | "
                     f"{cell(d['numpy_engine'])} |")  # fmt: skip
    return lines


def interactive_section(entry: dict, targets: list) -> list[str]:
    res = entry["result"]
    lines = ["## 3. Interactive prediction: one image to both models' probabilities", "",
             _stamp(entry), "",
             "Milliseconds per call, preprocessing included, called from a worker thread as "
             "Streamlit calls a page. **ours**: `core.preprocess` then `core.predict.predict_both` "
             "(what `load_predictor` returns: ONNX Runtime since issue 11, the numpy engine "
             "before), as the Predict page does. Reference: the same preprocessing "
             "then Keras `model.predict(x, verbose=0)` for both models. Drawing: a test image "
             "as the 280×280 RGBA pad returns it; upload: the same garment as a 400×400 PNG "
             "product photo (dark on white).", "",
             "| input | ours median / p95 | of which preprocessing (median) | model.predict "
             "median / p95 (reference) | **ours ÷ reference** | Keras `model(x)` median | "
             "largest probability difference |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for kind, d in res.items():
        ours, ref = median(d["ours_ms"]), median(d["keras_predict_ms"])
        lines.append(
            f"| {kind} ({len(d['ours_ms'])} calls; reference {len(d['keras_predict_ms'])}) | "
            f"{ours:.1f} / {percentile(d['ours_ms'], 95):.1f} | {median(d['preprocess_ms']):.1f} | "
            f"{ref:.1f} / {percentile(d['keras_predict_ms'], 95):.1f} | **{ours / ref:.3f}×** | "
            f"{median(d['keras_call_ms']):.1f} | {d['max_abs_diff']:.1e} |"
        )
        targets.append((f"Interactive prediction, {kind}: median", "< 10 ms", f"{ours:.1f} ms",
                        ours < 10))  # fmt: skip
        targets.append((f"Interactive prediction, {kind}: vs model.predict", "≤ 0.1×",
                        f"{ours / ref:.3f}×", ours / ref <= 0.1))  # fmt: skip
    return lines


def dashboard_section(entry: dict, targets: list) -> list[str]:
    res = entry["result"]
    hello, dash = median(res["cold"]["hello"]), median(res["cold"]["dashboard"])
    lines = ["## 4. Dashboard in Chromium (Playwright)", "", _stamp(entry), "",
             "Cold start: `streamlit run` to the first page fully drawn (charts present, script "
             "finished), median of alternated fresh servers; each run's results are kept in its "
             "cache by the first start on a fresh copy of the runs (timed apart below). Clicks: "
             "the Confusion page's Swap button against a one-button app's button, alternated "
             "click by click.", "",
             "| measure | dashboard | reference | **ratio** |", "|---|---|---|---|",
             f"| cold start (Overview) vs one-line app | {dash:.2f} s | {hello:.2f} s | "
             f"**{_x(dash / hello)}** |"]  # fmt: skip
    first = res["cold"].get("first_dashboard")
    if first is not None:
        lines.append(f"| first start on a fresh copy (computes the kept results) | {first:.2f} s "
                     f"| {hello:.2f} s | {_x(first / hello)} |")  # fmt: skip
    targets.append(("Cold start vs one-line app", "≤ 1.6×", _x(dash / hello), dash / hello <= 1.6))
    for state, label in (("clicks_no_model", "no model loaded"),
                         ("clicks_models_loaded", "models loaded")):  # fmt: skip
        d, b = median(res[state]["dashboard"]), median(res[state]["bare"])
        lines.append(f"| click → updated page, {label} (median of {len(res[state]['bare'])}) | "
                     f"{d:.3f} s | {b:.3f} s | **{_x(d / b)}** |")  # fmt: skip
        targets.append((f"Click on a results page, {label}", "≤ 2.5× bare app", _x(d / b),
                        d / b <= 2.5))  # fmt: skip
        busy = res[state].get("main_thread_ms")
        if busy:
            lines.append(f"| browser main thread busy per click, {label} | "
                         f"{busy['dashboard']:.0f} ms | {busy['bare']:.0f} ms | "
                         f"{_x(busy['dashboard'] / busy['bare'])} |")  # fmt: skip
    lines.append(f"| server peak memory (VmHWM) after every page | {res['server_peak_mib']:.0f} "
                 f"MiB | {res['bare_server_peak_mib']:.0f} MiB (button app) | "
                 f"{_x(res['server_peak_mib'] / res['bare_server_peak_mib'])} |")  # fmt: skip
    script = res.get("script") or {}
    warm = script.get("warm", {})
    if script:
        lines.append(f"| server script time of a click (AppTest, no browser) | "
                     f"{script['swap_click']:.3f} s | {script['bare_click']:.3f} s | "
                     f"{_x(script['swap_click'] / script['bare_click'])} |")  # fmt: skip
    lines += ["", "Page switches (sidebar click → page fully drawn), seconds; the last column is "
              "the page's script alone, run again with warm caches by AppTest (no browser):", "",
              "| page | first visit | next visit (median; range) | script time (warm) |",
              "|---|---|---|---|"]  # fmt: skip

    def next_visit(name: str) -> str:
        times = res.get("switch_next_all", {}).get(name)
        shown = f"{res['switch_next'].get(name, float('nan')):.2f}"
        return f"{shown} ({min(times):.2f}–{max(times):.2f})" if times else shown

    for name, first in res["switch_first"].items():
        lines.append(f"| {name} | {first:.2f} | {next_visit(name)} | {_f(warm.get(name), 3)} |")
    if "overview" in res["switch_next"]:
        lines.append(f"| overview | {dash:.2f} (cold start) | {next_visit('overview')} "
                     f"| {_f(warm.get('overview'), 3)} |")  # fmt: skip
    if res.get("imports"):
        st_s = median([i["streamlit"] for i in res["imports"]])
        pages_s = median([i["pages"] for i in res["imports"]])
        heavy = res["imports"][-1].get("heavy")
        if heavy is None:  # results from before the list was kept
            heavy = ["pandas", "SciPy", "scikit-learn", "Plotly"]
        loaded = ", ".join(heavy) or "no heavy library beyond Streamlit's"
        lines += ["", f"Imports in a fresh process: Streamlit {st_s:.2f} s, then the Overview "
                  f"page's modules ({loaded}) {pages_s:.2f} s more; the one-line app pays only "
                  "the first."]  # fmt: skip
    if script:
        lines += ["", f"One-line app's script: {script['hello_warm'] * 1000:.1f} ms warm. "
                  "TensorFlow imported by any page's script: "
                  f"{'yes' if script['tensorflow_imported'] else 'no'}."]  # fmt: skip
    slow = dict(res["switch_next"])  # every page (issue 11), not only the results pages
    worst = max(slow, key=slow.get)
    targets.append(("Every page renders on its next visit", "≤ 1.0 s each",
                    f"slowest {worst} {slow[worst]:.2f} s", slow[worst] <= 1.0))  # fmt: skip
    tf = res["tensorflow_in_server"]
    lines += ["", f"TensorFlow loaded into the dashboard server after visiting every page: "
              f"**{'yes' if tf else 'no'}**."]  # fmt: skip
    targets.append(("Results pages never import TensorFlow", "not in the server",
                    "loaded" if tf else "not loaded", not tf))  # fmt: skip
    return lines


def protocol_section(entry: dict) -> list[str]:
    res = entry["result"]
    lines = ["## 5. The protocol, whole: accuracy and time of core.train runs", "", _stamp(entry),
             "", f"`python -m core.train` for {res['epochs']} epochs, seed 0, at each batch size, "
             "beside the shipped runs (trained before the compute settings, on a busier or "
             "quieter machine: their times are not a same-run reference). Batch 32 is the "
             "report's protocol; a larger batch is an option (`--batch-size`), never the default.",
             "", "| model | run | test accuracy | test loss | mean s/epoch | vs batch 32 |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for model, data in res["models"].items():
        sh = data["shipped"]
        lines.append(f"| {model} | shipped ({sh['run_id']}, batch {sh['batch_size']}, "
                     f"{sh['epochs']} epochs) | {sh['test_accuracy']:.4f} | {sh['test_loss']:.4f} "
                     f"| {median(sh['epoch_seconds']):.1f} | – |")  # fmt: skip
        base = median(data["runs"]["32"]["epoch_seconds"]) if "32" in data["runs"] else None
        for batch, r in data["runs"].items():
            mean = sum(r["epoch_seconds"]) / len(r["epoch_seconds"])
            lines.append(f"| {model} | core.train, batch {batch} | {r['test_accuracy']:.4f} | "
                         f"{r['test_loss']:.4f} | {mean:.1f} | "
                         f"{_x(median(r['epoch_seconds']) / base) if base else '–'} |")  # fmt: skip
    return lines


def _loads(values: list[float] | None) -> str:
    return "–" if not values else " / ".join(f"{v:.2f}" for v in values)


def steadiness_section(entry: dict) -> list[str]:
    res = entry["result"]
    quiet, m, ref = res["quiet"], entry.get("machine") or {}, res["reference"]
    cpu = res.get("cpu") or {}
    where = (f"{m.get('cpu', '?')} ({cpu.get('family_model', '?')}), {m.get('cores', '?')} cores"
             f"{', AVX-512' if cpu.get('avx512') else ''}")  # fmt: skip
    if quiet["quiet"]:
        calm = (f"Measured on a quiet machine (waited {quiet['waited_s']} s until no other "
                "pytest / core.train / bench process ran and the 1-minute load was below 0.6).")  # fmt: skip
    else:
        calm = (f"**The machine never got quiet** (waited {quiet['waited_s']} s; load "
                f"{quiet.get('load', 0):.2f}, still running: "
                f"{'; '.join(f'`{o}`' for o in quiet['others'][:3]) or 'nothing'}): measured "
                "anyway, so the spread includes other people's work.")  # fmt: skip
    lines = ["## 6. Training steadiness: the trainer's fit in fresh processes, by thread setting",
             "", _stamp(entry), "",
             f"Machine: {where}. Every process is a fresh `python -m bench.steadiness_worker`: "
             "core.train's fit (baseline, seed 0, Adam, `steps_per_execution(50)`, oneDNN on, the "
             f"real training set, batch 32); {res['warmup_batches']} warm-up batches (graph "
             f"tracing included), then {res['timed_batches']} timed batches: **steady ms per "
             "batch**. Cores busy: the process's CPU time ÷ wall time over the timed batches. "
             f"{res['processes']} processes per setting, round-robin (the order rotates every "
             f"round). Reference: the `{ref}` setting's median. Loss difference: the largest "
             "difference of the running loss at every 50-batch execution from the first "
             f"`{ref}` process (same seed, same data order).", "", calm,
             f"1-minute / 5-minute / 15-minute load average before {_loads(res['load_before'])}, "
             f"after {_loads(res.get('load_after'))}.", "",
             "| setting | what it sets | processes | **ms/batch median** | min – max | p25 – p75 "
             f"| ÷ {ref} median | cores busy median (min – max) | CPU ms per batch | host steal, "
             f"cores: median (max) | ms/batch of the calm processes (steal < {CALM_STEAL}) | "
             "threads | largest loss difference |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, s in summarise(res["runs"], ref).items():
        about = res["settings"].get(name, {}).get("about", "")
        calm_ms = ", ".join(f"{v:.1f}" for v in s["calm_ms"]) or "none"
        lines.append(
            f"| {name} | {about} | {s['processes']} | **{s['ms_median']:.1f}** | "
            f"{s['ms_min']:.1f} – {s['ms_max']:.1f} | {s['ms_p25']:.1f} – {s['ms_p75']:.1f} | "
            f"{_x(s['ratio'])} | {s['cores_busy_median']:.2f} ({s['cores_busy_min']:.2f} – "
            f"{s['cores_busy_max']:.2f}) | {s['cpu_ms_per_batch']:.1f} | {s['steal_median']:.2f} "
            f"({s['steal_max']:.2f}) | {calm_ms} | {s['threads_median']:.0f} | "
            f"{s['loss_diff_max']:.1e} |"
        )
    lines += ["", "Every process, ms per batch (cores busy / host steal), in run order:", ""]
    for name, runs in res["runs"].items():
        text = ", ".join(f"{r['ms_per_batch']:.1f} ({r['cores_busy']:.2f} / "
                         f"{r.get('steal_cores', 0):.2f})" for r in runs)  # fmt: skip
        lines.append(f"- {name}: {text}")
    return [*lines, "", *_steadiness_cause(res, ref)]


def _steadiness_cause(res: dict, ref: str) -> list[str]:
    """Why processes are fast or slow, from the figures above."""
    a, summary = analysis(res["runs"]), summarise(res["runs"], ref)
    r = a["steal_ms_correlation"]
    rounds = ", ".join(f"{ms:.1f} ({st:.2f})"
                       for ms, st in zip(a["round_ms_median"], a["round_steal_median"],
                                         strict=True))  # fmt: skip
    calm = {n: median(s["calm_ms"]) for n, s in summary.items() if s["calm_ms"]}
    best = min(calm, key=calm.get) if calm else None
    steadiest = min(summary, key=lambda n: summary[n]["ms_p75"] - summary[n]["ms_p25"])
    st = summary[steadiest]
    lines = ["**Why a process is fast or slow.** Host steal is the CPU time the hypervisor gave "
             "to others while this machine's CPUs wanted to run (`/proc/stat`, invisible to the "
             "load average), in cores, over each process's timed batches. Over all "
             f"{a['processes']} processes, ms per batch follows it with Pearson r = "
             f"{'–' if r is None else format(r, '.2f')}; cores busy + steal stays at "
             f"{a['busy_plus_steal_median']:.2f} cores (median; {a['busy_plus_steal_min']:.2f} – "
             f"{a['busy_plus_steal_max']:.2f}): a slow process is one the host left about one "
             "core. The slow spells follow the clock, not the setting: median ms per batch "
             f"(host steal) of each round, all settings together: {rounds}.",
             "", f"- Calm processes (steal < {CALM_STEAL} cores, {a['calm_processes']} of "
             f"{a['processes']}): `{ref}` "
             + (f"{median(summary[ref]['calm_ms']):.1f} ms median" if ref in calm else "none")
             + (f", the best setting `{best}` {calm[best]:.1f}." if best else "."),
             f"- Steadiest: `{steadiest}` (p25 – p75 {st['ms_p25']:.1f} – {st['ms_p75']:.1f} ms, "
             f"{st['cpu_ms_per_batch']:.1f} CPU ms per batch against `{ref}`'s "
             f"{summary[ref]['cpu_ms_per_batch']:.1f}), largest loss difference "
             f"{st['loss_diff_max']:.1e} from `{ref}`"
             + (" (same results)." if st["loss_diff_max"] == 0 else
                " (not the same results: a different order of float sums from the first "
                "batches on).")]  # fmt: skip
    lines += ["- Threading runtime: this TensorFlow's oneDNN runs on TensorFlow's own (Eigen) "
              "intra-op pool, not OpenMP: `libtensorflow_cc` / `libtensorflow_framework` import "
              "no `omp_*`, `GOMP_*` or `__kmpc_*` symbol (the `libgomp` in the process is "
              "scikit-learn's, loaded by Keras' scikit-learn wrappers, idle during `fit`), so "
              "`OMP_NUM_THREADS` / `KMP_*` cannot change the mode and are not measured. "
              "Intra-op 2 / inter-op 2 is what TensorFlow already uses on 2 cores.",
              "- core.train keeps TensorFlow's thread defaults: no setting makes a process fast "
              "while the host takes a core, and the only steadier one (one intra-op thread) "
              "changes the numbers, so the same seed would no longer give the runs trained so "
              "far."]  # fmt: skip
    return lines


def render(saved: dict, about: dict) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in about["versions"].items())
    lines = ["# Benchmarks", "",
             f"Run them with `{COMMAND}` (all parts but `protocol` and `steadiness`, about 20 "
             "minutes on 2 cores), "
             f"`{COMMAND} --quick` (a few minutes), or `{COMMAND} --only "
             "training,evaluation,interactive,inference,dashboard,protocol,steadiness` (any of them). The "
             "tables below "
             "are rendered from `bench/results.json`; running one part replaces only its own "
             "section.", "",
             "Every figure is a ratio against a reference measured in the same run on the same "
             "machine: the machine is shared and single timings vary by ±30%.", "",
             f"- Machine: {about['cpu']}, {about['cores']} cores, "
             f"{_f(about['clock_ghz'], 3)} GHz, AVX2+FMA {'yes' if about['avx2_fma'] else 'no'}, "
             f"{about['memory_gib']} GiB; {about['platform']}",
             f"- Peak FP32 (assumed): {about['peak_assumption']}",
             f"- Versions: {versions}", ""]  # fmt: skip
    targets: list = []
    peak = about.get("peak_gflops")
    if "kernels" in saved:
        lines += [*kernels_section(saved["kernels"]), ""]
    if "training" in saved:
        lines += [*training_section(saved["training"], peak, targets), ""]
    if "evaluation" in saved:
        lines += [*evaluation_section(saved["evaluation"]), ""]
    if "interactive" in saved:
        lines += [*interactive_section(saved["interactive"], targets), ""]
    if "inference" in saved:
        from bench import inference

        lines += [*inference.section(saved["inference"], _stamp(saved["inference"])), ""]
        targets += inference.targets(saved["inference"])
    if "dashboard" in saved:
        lines += [*dashboard_section(saved["dashboard"], targets), ""]
    if "protocol" in saved:
        lines += [*protocol_section(saved["protocol"]), ""]
    if "steadiness" in saved:
        lines += [*steadiness_section(saved["steadiness"]), ""]
    lines += findings(saved, about)
    if targets:
        lines += ["## Targets", "", "| target | goal | measured | met |", "|---|---|---|---|"]
        for name, goal, measured, met in targets:
            mark = {True: "yes", False: "**no**", None: "partly"}[met]
            lines.append(f"| {name} | {goal} | {measured} | {mark} |")
        lines.append("")
    return "\n".join(lines)


def _kernel_ms(saved: dict) -> dict[str, float]:
    """Convolution kernels' CPU ms per training batch with oneDNN, by model (section 0)."""
    totals: dict[str, float] = {}
    for name, d in saved.get("kernels", {}).get("result", {}).get("1", {}).items():
        model = name.split()[0]
        totals[model] = totals.get(model, 0.0) + sum(d["ms"].values())
    return totals


def _onednn_gain(saved: dict) -> str:
    res = saved.get("kernels", {}).get("result")
    if not res:
        return ""
    parts = []
    for model in sorted({name.split()[0] for name in res["1"]}):
        off = sum(sum(d["ms"].values()) for n, d in res["0"].items() if n.startswith(model))
        on = sum(sum(d["ms"].values()) for n, d in res["1"].items() if n.startswith(model))
        parts.append(f"{model} {_x(on / off)}")
    return (
        " Section 0: the convolution kernels of one batch then take "
        + ", ".join(parts)
        + (" the CPU time.")
    )


def _batch_gain(saved: dict) -> str:
    res = saved.get("protocol", {}).get("result", {}).get("models", {})
    parts = []
    for model, data in res.items():
        runs = data["runs"]
        if "32" in runs and "128" in runs:
            ratio = median(runs["128"]["epoch_seconds"]) / median(runs["32"]["epoch_seconds"])
            parts.append(f"{model} {_x(ratio)}")
    return "; whole runs, epoch time at 128 against 32: " + ", ".join(parts) if parts else ""


def findings(saved: dict, about: dict) -> list[str]:
    """What was changed, what it gave, and why the targets not met are not, with numbers."""
    lines = ["## What was changed, and what is left", "",
             "### Training: `core.train`", "",
             "Changed (core/train.py; the protocol is untouched: same data, batch 32, Adam "
             "defaults, same loss, 10 epochs, per-epoch test evaluation):", "",
             "1. oneDNN's kernels are turned on in the trainer's own process "
             "(`TF_ENABLE_ONEDNN_OPTS=1` before TensorFlow is imported; TensorFlow leaves them off "
             "on AMD CPUs; `TF_ENABLE_ONEDNN_OPTS=0` still wins)." + _onednn_gain(saved),
             "2. Keras runs 50 batches per call into the compiled graph (`steps_per_execution`, "
             "the largest divisor of the log interval up to 50), so the per-batch Python work of "
             "`fit` and of the live-log callback happens once per 50 batches; live-log records fall "
             "on the same steps as before, a Stop is noticed within 50 batches (about a second).",
             "3. The manifest records these settings (`compute`). The same seed still gives "
             "bitwise the same probabilities (two command-line runs compared; "
             "tests/test_train.py's reproducibility test passes).", ""]  # fmt: skip
    training = saved.get("training", {}).get("result", {}).get("models", {})
    evaluation = saved.get("evaluation", {}).get("result", {}).get("onednn", {})
    kernels = _kernel_ms(saved)
    cores = about.get("cores") or 1
    for model, data in training.items():
        s = data["summary"]
        plain, core, tuned = s["plain"]["steady_s"], s["core"]["steady_s"], s["tuned"]["steady_s"]
        text = (f"- {model}: core.train {core:.1f} s per epoch against plain fit's {plain:.1f} s "
                f"(**{_x(core / plain)}**); the same fit with the compute settings alone "
                f"{tuned:.1f} s, so the live log and the test evaluation cost {_x(core / tuned)}")  # fmt: skip
        if model in evaluation:
            ev = median(evaluation[model]["keras_predict_b1000"])
            text += f", of which evaluating the 10,000 test images is about {ev:.1f} s ({ev / core:.0%})"
        if model in kernels and not saved["training"]["settings"].get("limit"):
            steps = s["core"]["images"] / 32
            floor = steps * kernels[model] / 1000 / cores
            text += (f". The convolution kernels alone need {kernels[model]:.0f} ms of one core per "
                     f"batch (section 0): {floor:.0f} s per epoch even with {cores} cores "
                     f"perfectly shared and nothing else to do, {_x(floor / plain)} of plain fit")  # fmt: skip
        lines.append(text + ".")
    lines += ["", "Why not 0.6×: a batch-32 step here is bound by TensorFlow's convolution kernels "
              "(section 0: 8-38 GFLOP/s per core with oneDNN, where OpenBLAS reaches 50-60 on the "
              "same products), not by Python, the input pipeline or the evaluation; the kernel time "
              "alone is a floor above 0.6× of plain fit. Tried while exploring (baseline, "
              "100-batch epochs interleaved with the reference; CPU ms per batch, which a busy "
              "machine disturbs less than wall time):", "",
              "- XLA (`jit_compile=True`): 45-46 ms against 30-35 with oneDNN, and a slower first "
              "epoch (XLA:CPU's own convolutions); rejected.",
              "- Thread pools: intra-op 1 / inter-op 2 and intra-op 2 / inter-op 1 against "
              "TensorFlow's default (one thread per core for both): no better on wall time "
              "(best epochs 20-22 against 18-19 ms per batch); default kept.",
              "- A `tf.data` pipeline of uint8 images normalised in the graph, with prefetch: "
              "within noise of Keras' own array pipeline (input is not the bottleneck); not "
              "adopted.",
              "- Evaluation batch 100 / 250 / 500 / 1000: equal within noise (1.2-1.4 s baseline, "
              "1.5-2.0 s residual per epoch with oneDNN); 1000 kept.",
              "- The three baseline convolutions as numpy im2col + OpenBLAS products (forward and "
              "both gradients): about 30 ms of one core per batch, no better than oneDNN: the "
              "im2col copies cost as much as the products saved.",
              "- A larger batch changes the protocol, so it is only an option "
              "(`python -m core.train --batch-size 128`), reported in section 5 beside the "
              "default, never instead of it. It is no large lever here either: the kernels cost "
              "about the same per image at batch 128 (exploration: 115 ms of CPU per 128-image "
              "batch against 34.5 ms per 32-image batch, 0.84× per image)" + _batch_gain(saved)
              + ".", ""]  # fmt: skip
    dashboard = saved.get("dashboard", {}).get("result")
    interactive = saved.get("interactive", {}).get("result")
    if interactive:
        worst = max(median(d["ours_ms"]) for d in interactive.values())
        lines += ["### Interactive prediction", "",
                  f"Met: the Predict page runs no TensorFlow in the server (ONNX Runtime on the "
                  f"runs' model.onnx since issue 11; core/predict.py's numpy engine before, still "
                  f"the fallback); both models with preprocessing take "
                  f"at most {worst:.1f} ms (median), mostly the upload's decoding and fitting.", ""]  # fmt: skip
    if dashboard:
        script = dashboard.get("script", {})
        hello = median(dashboard["cold"]["hello"])
        dash = median(dashboard["cold"]["dashboard"])
        imports = dashboard.get("imports") or []
        pages_s = median([i["pages"] for i in imports]) if imports else None
        click = median(dashboard["clicks_models_loaded"]["dashboard"])
        swap = _f(script.get("swap_click"), 3)
        bare = median(dashboard["clicks_models_loaded"]["bare"])
        nxt = dashboard.get("switch_next", {})
        slow = sorted((n for n in nxt if nxt[n] > 1.0), key=nxt.get, reverse=True)
        first = dashboard["cold"].get("first_dashboard")
        busy = dashboard["clicks_models_loaded"].get("main_thread_ms")
        busy_text = (
            f"{busy['dashboard']:.0f} ms of it per click against the bare app's "
            f"{busy['bare']:.0f} ms"
            if busy
            else "the table's click rows"
        )
        lines += ["### Dashboard: what was changed (issue 11), and what is left", "",
                  "Changed (the pages, widgets/gallery.py, widgets/charts.py, widgets/cached.py, "
                  "widgets/analysis.py, widgets/nav.py, core/runcache.py, core/seeds.py, "
                  "core/artifacts.py, core/figures/, core/projection.py, "
                  ".streamlit/config.toml):",
                  "",
                  "1. Interactive parts rerun alone (`st.fragment`): the Confusion page's matrices, "
                  "its cell (pickers, Swap) and its gallery (filters, then the page of images); "
                  "the Compare page's agreement matrix and gallery; inspecting one image; the "
                  "ROC page's class choice and threshold; the Map and its inspected image; the "
                  "Predict input. A callback that changes what another part shows reruns only "
                  "the parts named (`st.rerun([...])`): a Swap reruns the cell and the page of "
                  "images, not the matrices, not the gallery's filters, not the page.",
                  "2. A pick never sends a matrix again: the picked cell's outline is a box one "
                  "style rule puts over the chart where Plotly draws that cell "
                  "(`charts.outline_css`: the square plot area between the figure's fixed "
                  "margins). With the outline in the figure the browser redrew the whole matrix "
                  "on every pick (0.3-1 s of a click on 2 busy cores); with every cell's outline "
                  "drawn hidden in it (200 shapes per matrix, the rule showing two), each visit "
                  "of the page took 0.24 s longer (0.67 against 0.48 s, 10 alternated visits).",
                  "3. A gallery page is one HTML block of inline PNGs with captions and alt text "
                  "(24 `st.image` tiles were 24 media requests), each sent at 28 px and "
                  "enlarged by the browser (less for it to read on every click); a clicked "
                  "chart keeps its key (a fresh key made the browser draw it anew).",
                  "4. What is computed once per run is kept in its cache, keyed on its checksums "
                  "and checked on read (`core.runcache`): metrics and ROC curves, the pair's "
                  "McNemar test and bootstrap interval, the architecture table and graph, and, "
                  "under the artifacts folder, the seed summaries and verdicts. A cold Overview "
                  "reads small files and imports no SciPy, scikit-learn or ONNX Runtime.",
                  "5. Lazy tabs (only the open tab runs and is drawn): the Overview's seed chart "
                  "and class table, the second model's architecture; the Confusion page's "
                  "matrices are a segmented control (both models or their difference; a tab "
                  "panel searched the matrices' SVG for a focusable child on every later click: "
                  "about 15 ms of each). The Overview's first screen loads no chart script "
                  "(Plotly's is 4.7 MB: about a second of a cold start); its sample images are "
                  "an HTML grid.",
                  "6. Streamlit's file watcher is off (`.streamlit/config.toml`): it watched the "
                  "project folder recursively, `.venv` included, which cost each start about "
                  "2 s and each click more while other files changed.",
                  "7. The Overview's first screen: its small tables are Markdown "
                  "(`widgets.layout.static_table`: `st.table` imports pandas, and the data "
                  "grid's script cost about 0.5 s of a fresh browser's first page) and its "
                  "numbers arrays (an evaluation's per-class table and the seed summaries are "
                  "DataFrames only when another page asks), so a cold Overview imports no "
                  "pandas or pyarrow (0.35 s); the data set check is remembered in each run's "
                  "checksum memo (it decompressed and hashed 30 MB beside the first page run: "
                  "0.3-0.9 s of CPU, and the run waited for it); the page icon is a Material "
                  "icon (an emoji loads Streamlit's emoji table, 0.1-0.7 s); each run's "
                  "checksums are remembered in its cache across processes (same identity rule "
                  "as in a process); and no cyclic GC runs during the server's first page run "
                  "(`widgets/nav.py`: 3 full collections, 0.36 s, of a first Overview run in "
                  "AppTest), its survivors frozen afterwards. Each model's six numbers are one "
                  "escaped HTML list (`widgets.layout.metric_grid`), not six `st.metric` "
                  "elements (70-90 ms of the browser's main thread per fresh load, 30 "
                  "alternated loads).",
                  "8. The ROC page's three sections (curves, abstention, calibration) are lazy "
                  "tabs bound to the URL; its figures, the matrices and the Map have fixed "
                  "margins, so Plotly never draws them twice for its automargin (the Map: at "
                  "the usual width).",
                  "9. The Map draws its 10,000 points in WebGL (`go.Scattergl`, one canvas, not "
                  "one SVG element each) and its PCA is numpy's SVD (equal to scikit-learn's, "
                  "tested), so the page imports no scikit-learn.",
                  "10. A Swap click replaces fewer elements: the cell's pickers are in a "
                  "\"Choose a cell\" popover and the gallery's \"Inspect one image\" list in "
                  "another (a closed popover's content is not drawn; three select lists, two "
                  "changed by every Swap, were 15-30 ms of a click's main thread, the inspect "
                  "list 7-10 ms), the gallery's pager is one flex row, and the Swap button has "
                  "no tooltip (the pointer rests on it, and a shown tooltip was redrawn on "
                  "every swap: 15-30 ms of the click's main-thread time).", "",
                  f"Measured now: a Swap click takes {click:.2f} s against the bare button's "
                  f"{bare:.2f} s ({_x(click / bare)}; its script {swap} s in AppTest); a cold "
                  f"start {dash:.1f} s against the one-line app's {hello:.1f} s "
                  f"({_x(dash / hello)})"
                  + (f"; the first start on a fresh copy, which computes what is kept, "
                     f"{first:.1f} s" if first is not None else "")
                  + f". The Overview's modules import in {_f(pages_s, 2)} s beyond Streamlit.",
                  "- Left in a cold start beyond the one-line app: numpy and Pillow (about "
                  "0.1 s); reading the test set and encoding the 60 sample images (about "
                  "0.2 s); and the browser drawing the first screen: React re-renders the page "
                  "for each batch of its about 85 messages, and Chromium's main thread is busy "
                  "1.0-1.6 s of a cold load against 0.5 s for one line (CDP trace, "
                  "TaskDuration), on the same two cores as the server. Tried and dropped, no "
                  "faster: the sample grid as a parallel fragment, and importing the libraries "
                  "in an `st.App` lifespan while the browser loads the page (the same process "
                  "serves the page's scripts, which then waited).",
                  f"- Left in a click: the browser's main thread ({busy_text}), not the server "
                  "(its script is the AppTest row): React re-renders the page's elements for "
                  "each batch of updates (the cell's heading, caption, outline rule and "
                  "buttons; the pager and the 24 images). Tried and dropped: both fragments in "
                  "one run per Swap (4-5 ms), CSS containment or a compositing layer for the "
                  "charts, asynchronous image decoding, one sprite for the grid (none faster).",
                  ("- Next visits over 1 s: " + ", ".join(f"{n} {nxt[n]:.2f} s" for n in slow)
                   + ". The Map's WebGL scene is most of it: creating its WebGL contexts in "
                   "the software renderer takes 0.1-0.6 s of a visit.")
                  if slow else "- Every page's next visit is within 1 s.",
                  "- Memory: the server's peak is set by pandas, Plotly and the test images; no "
                  "TensorFlow is ever loaded into it.", ""]  # fmt: skip
    return lines
