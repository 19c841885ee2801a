"""bench/steadiness.py: the statistics over fresh processes, the round-robin, the report section
(no timing thresholds: nothing here measures speed)."""

from __future__ import annotations

import json

import pytest

from bench import machine, results, steadiness
from bench.steadiness_worker import cpu_by_name


def _run(ms: float, cores: float, losses: list[float], threads: int = 18, steal: float = 0.0,
         round_: int = 0) -> dict:  # fmt: skip
    return {"ms_per_batch": ms, "cores_busy": cores, "threads": threads, "losses": losses,
            "ms_per_execution": [ms], "thread_cpu": {}, "busy_threads": [], "round": round_,
            "steal_cores": steal, "load_1min": 0.2}  # fmt: skip


RUNS = {
    "default": [_run(10.0, 1.75, [1.0, 0.5], steal=0.05),
                _run(17.0, 1.0, [1.0, 0.5], steal=0.8, round_=1),
                _run(12.0, 1.5, [1.0, 0.5 + 1e-7], steal=0.3, round_=2)],
    "pinned": [_run(11.0, 1.5, [1.0, 0.5], steal=0.3),
               _run(9.0, 1.8, [1.0, 0.52], threads=20, round_=1)],
}  # fmt: skip


def test_loss_difference_over_the_common_executions():
    assert steadiness.loss_difference([1.0, 0.5, 0.3], [1.0, 0.25]) == pytest.approx(0.25)
    assert steadiness.loss_difference([], [1.0]) == 0.0


def test_summary_is_against_the_default_median():
    s = steadiness.summarise(RUNS)
    d, p = s["default"], s["pinned"]
    assert (d["processes"], d["ms_median"], d["ms_min"], d["ms_max"]) == (3, 12.0, 10.0, 17.0)
    assert d["ms_p25"] == pytest.approx(11.0) and d["ms_p75"] == pytest.approx(14.5)
    assert d["ratio"] == 1.0 and p["ratio"] == pytest.approx(10.0 / 12.0)
    assert (d["cores_busy_median"], d["cores_busy_min"], d["cores_busy_max"]) == (1.5, 1.0, 1.75)
    assert d["loss_diff_max"] == pytest.approx(1e-7) and p["loss_diff_max"] == pytest.approx(0.02)
    assert p["threads_median"] == 19
    assert d["cpu_ms_per_batch"] == pytest.approx(17.5)  # median of 17.5, 17.0 and 18.0
    assert (d["steal_median"], d["steal_max"], d["calm_ms"]) == (0.3, 0.8, [10.0])
    assert p["calm_ms"] == [9.0]


def test_analysis_relates_speed_to_host_steal_and_to_time():
    a = steadiness.analysis(RUNS)
    assert a["processes"] == 5 and a["calm_processes"] == 2
    assert a["steal_ms_correlation"] > 0.9  # the slow processes are the ones the host took from
    assert a["busy_plus_steal_median"] == pytest.approx(1.8)
    assert a["busy_plus_steal_min"] == pytest.approx(1.8) and a["busy_plus_steal_max"] == 1.8
    assert a["round_ms_median"] == [10.5, 13.0, 12.0]  # rounds 0, 1, 2
    assert a["round_steal_median"] == [pytest.approx(0.175), pytest.approx(0.4), 0.3]
    no_steal = {"default": [_run(10.0, 1.7, [1.0]), _run(12.0, 1.7, [1.0])]}
    assert steadiness.analysis(no_steal)["steal_ms_correlation"] is None


def test_processes_run_round_robin_and_wait_for_quiet(monkeypatch):
    order = []

    def fake_worker(name, warmup, timed):
        order.append(name)
        return _run(10.0 + len(order), 1.5, [1.0], steal=0.01 * len(order))

    monkeypatch.setattr(steadiness, "_worker", fake_worker)
    monkeypatch.setattr(steadiness, "others_busy", lambda: ["123 python -m pytest"])
    res = steadiness.run(3, 10, 20, wait_s=0, log=lambda text: None,
                         names=["default", "intra2_inter1", "pinned"])  # fmt: skip
    assert order == ["default", "intra2_inter1", "pinned", "intra2_inter1", "pinned", "default",
                     "pinned", "default", "intra2_inter1"]  # fmt: skip
    assert res["quiet"]["quiet"] is False and res["quiet"]["others"] == ["123 python -m pytest"]
    assert [r["round"] for r in res["runs"]["pinned"]] == [0, 1, 2]
    assert len(res["load_before"]) == 3 and len(res["load_after"]) == 3
    assert set(res["summary"]) == {"default", "intra2_inter1", "pinned"}
    assert res["analysis"]["processes"] == 9
    assert "threads_pinned" not in steadiness.DEFAULT_NAMES  # a diagnostic, only when asked for


def test_others_busy_leaves_out_this_process_and_its_parents():
    mine = steadiness._ancestors()
    for line in steadiness.others_busy():
        assert int(line.split()[0]) not in mine


def test_thread_cpu_grouped_by_name():
    before = {1: ("python", 1.0, 0), 2: ("tf_Compute", 0.5, 1)}
    after = {1: ("python", 3.0, 0), 2: ("tf_Compute", 0.52, 1), 3: ("tf_Compute", 1.0, 0)}
    got = cpu_by_name(before, after)
    assert list(got) == ["python", "tf_Compute"]
    assert got["python"] == {"threads": 1, "cpu_s": 2.0, "busy_threads": 1}
    assert got["tf_Compute"] == {"threads": 2, "cpu_s": 1.02, "busy_threads": 1}


@pytest.mark.parametrize("quiet", [True, False])
def test_report_renders_the_steadiness_table(quiet):
    result = {
        "processes": 3, "warmup_batches": 100, "timed_batches": 600, "reference": "default",
        "quiet": {"quiet": quiet, "waited_s": 30, "others": [] if quiet else ["9 pytest -q"],
                  "load": 1.5},
        "cpu": {"family_model": "family 25, model 1", "avx512": False},
        "load_before": [0.3, 0.4, 0.5], "load_after": [1.9, 1.0, 0.7],
        "settings": {n: steadiness.SETTINGS[n] for n in RUNS}, "runs": RUNS,
    }  # fmt: skip
    entry = {"date": "2026-01-01T00:00:00+00:00", "quick": False, "settings": {},
             "seconds": 600.0, "load_1min_end": 0.5,
             "machine": {"cpu": "AMD EPYC", "cores": 2}, "result": result}  # fmt: skip
    text = results.render(json.loads(json.dumps({"steadiness": entry})), machine.describe())
    assert "## 6. Training steadiness" in text
    assert "AMD EPYC (family 25, model 1), 2 cores" in text
    assert "| default | core.train as it was" in text
    assert ("| 3 | **12.0** | 10.0 – 17.0 | 11.0 – 14.5 | 1.00× | 1.50 (1.00 – 1.75) | 17.5 | "
            "0.30 (0.80) | 10.0 | 18 | 1.0e-07 |") in text  # fmt: skip
    assert "| pinned |" in text and "| **10.0** | 9.0 – 11.0 |" in text and "0.83×" in text
    assert "- default: 10.0 (1.75 / 0.05), 17.0 (1.00 / 0.80), 12.0 (1.50 / 0.30)" in text
    assert "Pearson r = 0.9" in text and "all settings together: 10.5 (0.17), 13.0 (0.40)" in text
    assert "`default` 10.0 ms median, the best setting `pinned` 9.0." in text
    assert "Steadiest: `pinned`" in text and "(not the same results" in text
    assert "before 0.30 / 0.40 / 0.50, after 1.90 / 1.00 / 0.70" in text
    assert ("never got quiet" in text) is not quiet and ("`9 pytest -q`" in text) is not quiet
