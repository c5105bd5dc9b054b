"""The local engine on every CPU: llama.cpp's extra weight buffer types (AMX crashes on some Intel
Xeons) chosen from the features llama.cpp reports, the choice reaching llama.cpp's loader and
its load log, the override, the llama-cpp-python server wrapper, the thread policy beside a busy
process, `muse doctor` and `muse bench engine --contention`.

tests/fixtures/cpu/ holds what a native build printed on an Intel Xeon with AMX (16 cores):
its `llama_print_system_info()` line and the buffer lines of its load log, so the AMX decision
is checked on a real AMX report on any CPU; on a CPU that reports AMX itself, the engine tests
below check the real thing.

Run: `.venv/bin/pytest tests/test_cpu.py`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from openmuse.doctor import _crash_hint
from openmuse.engines import EngineSettings, cpu
from openmuse.engines.cpu import ThreadPolicy, choose_extra_buffers, features, threads_for, weight_buffers
from openmuse.engines.local import LocalEngine
from openmuse.types import ChatRequest

from .conftest import SYSTEM, run_muse

FIX = Path(__file__).parent / "fixtures" / "cpu"
XEON = (FIX / "xeon-amx-system-info.txt").read_text()
EPYC = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 1 | "
        "AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |")
BURN = "while True:\n    pass\n"


def test_features_parsed_as_llama_cpp_reports_them():
    f = features(XEON)
    assert f["AMX_INT8"] == "1" and f["AVX512_BF16"] == "1" and f["REPACK"] == "1"
    assert "AMX_INT8" not in features(EPYC)
    assert features("CPU : NEON = 1 | ARM_FMA = 1 | SVE_CNT = 16 | OPENMP = 1 |") == {
        "NEON": "1", "ARM_FMA": "1", "SVE_CNT": "16", "OPENMP": "1"}


def test_auto_turns_extra_buffers_off_where_the_build_reports_amx():
    c = choose_extra_buffers("auto", XEON)
    assert c.use_extra is False and "AMX_INT8" in c.reason and "20824" in c.reason


def test_auto_keeps_extra_buffers_where_nothing_is_known_to_crash():
    assert choose_extra_buffers("auto", EPYC).use_extra is True  # repacked weights stay on for Arm/AVX2


def test_override_turns_them_back_on_or_off():
    assert choose_extra_buffers("on", XEON).use_extra is True
    assert choose_extra_buffers("off", EPYC).use_extra is False


def test_weight_buffers_read_from_the_xeon_load_log():
    log = (FIX / "xeon-amx-load.log").read_text()
    assert weight_buffers(log) == {"AMX": 48.94, "CPU_Mapped": 45.6}


def test_engine_never_loads_with_amx_where_this_build_reports_it(engine):
    """What reached llama.cpp's loader is the choice made from llama.cpp's own report."""
    info = cpu.system_info()
    assert engine.system_info == info
    expected = choose_extra_buffers("auto", info)
    assert engine.buffers == expected
    assert engine._model.params.use_extra_bufts is expected.use_extra
    if features(info).get("AMX_INT8") == "1":
        assert engine._model.params.use_extra_bufts is False
    assert "AMX" not in engine.weight_buffers
    assert sum(engine.weight_buffers.values()) > 50  # the load log was read: ~92 MiB of weights


@pytest.mark.parametrize("setting", ["on", "off"])
def test_override_reaches_llama_cpp(setting):
    eng = LocalEngine(EngineSettings(extra_buffers=setting, n_ctx=512, n_seq_max=1))
    try:
        assert eng._model.params.use_extra_bufts is (setting == "on")
        assert eng.runtime()["extra_buffers"] == {"setting": setting, "used": setting == "on",
                                                  "reason": f"turned {setting} by --extra-buffers {setting}"}
        if setting == "off":
            assert set(eng.weight_buffers) <= {"CPU", "CPU_Mapped"}  # no AMX, no CPU_REPACK
        c = eng.generate(ChatRequest(messages=[SYSTEM, {"role": "user", "content": "What is the capital of France?"}],
                                     max_tokens=16))
        assert "Paris" in c.text
    finally:
        eng.close()


def test_llama_server_wrapper_loads_with_the_same_choice(llama_server_run):
    _, log = llama_server_run
    text = Path(log).read_text()
    choice = choose_extra_buffers("auto", cpu.system_info())
    assert f"openmuse: extra weight buffers {'on' if choice.use_extra else 'off'} ({choice.reason})" in text
    assert weight_buffers(text) and "AMX" not in weight_buffers(text)


def test_llama_server_wrapper_refuses_a_bad_setting():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSE_")}  # PYTHONPATH installs too
    r = subprocess.run([sys.executable, "-m", "openmuse.engines.llama_server", "--model", "x.gguf"],
                       capture_output=True, text=True, env={**env, "MUSE_EXTRA_BUFFERS": "maybe"})
    assert r.returncode == 1 and r.stderr.strip() == "error: MUSE_EXTRA_BUFFERS must be auto, on or off, not 'maybe'"


# -- threads -----------------------------------------------------------------------------------

def test_threads_for_free_cores():
    assert threads_for(2.0, 2) == 2
    assert threads_for(1.8, 2) == 2      # a core 3/4 free still counts
    assert threads_for(1.33, 2) == 1     # a neighbour spinning on one of two cores
    assert threads_for(0.1, 4) == 1      # never fewer than one
    assert threads_for(15.06, 16) == 15
    assert threads_for(40.0, 16) == 16   # never more than the physical cores


def _one_burner():
    p = subprocess.Popen([sys.executable, "-c", BURN])
    time.sleep(0.3)
    return p


needs_two_cores = pytest.mark.skipif(
    len(cpu.allowed_cpus()) < 2 or cpu.most_threads() != len(cpu.allowed_cpus()),
    reason="needs two or more allowed cores without SMT siblings")


@needs_two_cores
def test_policy_gives_up_the_core_a_busy_process_takes():
    burner = _one_burner()
    try:
        policy = ThreadPolicy(interval=0.2)
        time.sleep(0.6)
        n = policy.choose()
    finally:
        burner.kill()
        burner.wait()
    assert policy.free_cores is not None and policy.free_cores < policy.most - 0.5
    assert n <= policy.most - 1


def test_fixed_threads_do_not_move():
    policy = ThreadPolicy(fixed=3, interval=0.0)
    assert policy.choose() == 3 and policy.describe()["policy"] == "fixed"


@needs_two_cores
def test_engine_decodes_with_fewer_threads_beside_a_busy_process(engine):
    burner = _one_burner()
    try:
        engine.use_threads(None)
        time.sleep(0.6)  # one measuring interval
        c = engine.generate(ChatRequest(messages=[SYSTEM, {"role": "user", "content": "Tell me about Lyon."}],
                                        max_tokens=24, ignore_eos=True))
    finally:
        burner.kill()
        burner.wait()
        most = engine.threads.most
        used = engine._n_threads
        engine.use_threads(engine.settings.n_threads)
    assert c.usage.completion_tokens == 24
    assert used <= most - 1


def test_crash_of_the_probe_is_reported_with_its_signal():
    hint = _crash_hint(-11)
    assert hint.startswith("the engine crashed with SIGSEGV") and "--extra-buffers off" in hint


# -- front doors -------------------------------------------------------------------------------

def test_doctor_json_reports_the_choices_and_one_generation():
    r = run_muse("doctor", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    info = rep["llama_cpp"]["system_info"]
    assert info == cpu.system_info()
    probe = rep["probe"]
    assert probe["ok"] and "Paris" in probe["generation"]["answer"] and probe["generation"]["tokens"] > 0
    assert probe["runtime"]["extra_buffers"]["used"] is choose_extra_buffers("auto", info).use_extra
    assert probe["runtime"]["threads"]["policy"] == "auto"
    assert rep["machine"]["allowed_cpus"] == len(cpu.allowed_cpus())
    assert set(rep["tools"]) >= {"tesseract (OCR of images)", "chromium (muse build's checker, web-app tests)", "opencv (muse build --image)"}


def test_doctor_text_and_a_failing_probe(tmp_path):
    r = run_muse("doctor", "--threads", "1", "--extra-buffers", "off")
    assert r.returncode == 0, r.stderr
    assert "extra weight buffer types off (--extra-buffers off" in r.stdout
    assert "threads   fixed: 1 now" in r.stdout and "generate  ok" in r.stdout
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    r = run_muse("doctor", "--model", str(bad))
    assert r.returncode == 1 and "Traceback" not in r.stdout + r.stderr
    assert f"generate  FAILED: cannot load model {bad}: not a valid GGUF file" in r.stdout


def test_ask_json_and_models_say_which_path_is_in_use():
    r = run_muse("What is the capital of France?", "--json", env={"MUSE_THREADS": "auto"})
    assert r.returncode == 0, r.stderr
    rt = json.loads(r.stdout)["engine"]["runtime"]
    assert rt["extra_buffers"]["setting"] == "auto" and rt["threads"]["policy"] == "auto"
    r = run_muse("models")
    assert "extra weight buffers:" in r.stdout and "threads: auto" in r.stdout and "llama.cpp: CPU :" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["--threads", "0"], "'0' is neither auto nor a whole number of threads ≥ 1"),
    (["--threads", "many"], "'many' is neither auto nor a whole number of threads ≥ 1"),
    (["--extra-buffers", "maybe"], "'maybe' is not one of 'auto', 'on', 'off'"),
])
def test_bad_cpu_flags_are_one_line_errors(args, message):
    r = run_muse("Hi", *args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_bench_contention_writes_every_policy(tmp_path):
    out = tmp_path / "c.json"
    r = run_muse("bench", "engine", "--contention", "--steps", "16", "--seconds", "3", "--repeats", "1",
                 "--out", str(out))
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text())
    rows = rep["results"]
    assert rows[0]["policy"] == "auto" and rows[0]["default"] and rows[1]["policy"].startswith("all (")
    assert rep["args"]["burners"] == 1 and rep["env"]["system_info"] == cpu.system_info()
    for row in rows:
        assert row["idle_tok_s"] > 0 and row["contended_tok_s"] > 0
        # the speeds are written to one decimal: allow their rounding (it matters on a slow, busy machine)
        rounding = 0.05 * (1 + row["kept"]) / row["idle_tok_s"]
        assert abs(row["kept"] - row["contended_tok_s"] / row["idle_tok_s"]) < 0.02 + rounding
    assert f"written to {out}" in r.stdout


def test_doctor_prints_markup_like_text_as_it_is():
    """Found in review: an answer such as ``Paris [/INST]`` was read as Rich markup and crashed."""
    import io

    from rich.console import Console

    from openmuse.doctor import print_report

    rep = {"openmuse": "0", "python": "3", "tools": {"tesseract [/x]": "5 [/y]"},
           "machine": {"cpu": "CPU [/b]", "machine": "x86_64", "os": "Linux", "logical_cpus": 2, "allowed_cpus": 2,
                       "physical_cores_allowed": 2, "cgroup_quota_cores": None, "flags": []},
           "llama_cpp": {"llama-cpp-python": "0.3.36", "system_info": "", "features_on": ["AVX2"],
                         "extra_buffers_if_auto": ""},
           "probe": {"ok": True, "engine": "local", "model": "m[/z]", "load_s": 0.1,
                     "generation": {"question": "q", "answer": "Paris [/INST]", "tokens": 3, "seconds": 0.1,
                                    "tok_s": 30.0}}}
    buf = io.StringIO()
    print_report(rep, Console(file=buf, width=300))
    assert "'Paris [/INST]'" in buf.getvalue() and "tesseract [/x]: 5 [/y]" in buf.getvalue()
    rep["probe"] = {"ok": False, "error": "cannot load model /a[/b].gguf"}
    print_report(rep, Console(file=buf, width=300))
    assert "FAILED: cannot load model /a[/b].gguf" in buf.getvalue()
