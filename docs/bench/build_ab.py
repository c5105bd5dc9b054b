"""Two builds of llama-cpp-python side by side: decode tok/s of the local engine for 1 and 8
sequences (`muse bench engine`), each build in its own process, alternating, in one run.

The default build is the one installed in the virtual environment (``make`` compiles it with
llama.cpp's default ``GGML_NATIVE=ON``: ``-march=native``). The other is installed into a folder
and put first on ``PYTHONPATH``, for example the portable AVX2 build:

    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
      -DGGML_BMI2=ON -DLLAVA_BUILD=OFF" .venv/bin/pip install --no-cache-dir --no-deps \
      --target /tmp/portable llama-cpp-python==0.3.36
    .venv/bin/python docs/bench/build_ab.py --other /tmp/portable --repeats 3

Writes ``docs/bench/build-ab.json`` (``--out``) with the arguments, each build's llama.cpp
system info and every run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def bench(site: str | None, ns: str, steps: int, threads: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSE_")}
    if site:
        env["PYTHONPATH"] = site + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run([str(Path(sys.executable).with_name("muse")), "bench", "engine", "--ns", ns,
                        "--steps", str(steps), "--threads", threads, "--out", f.name],
                       env=env, check=True, capture_output=True, text=True)
        return json.loads(Path(f.name).read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--other", required=True, help="folder holding the other build of llama_cpp")
    ap.add_argument("--other-name", default="portable AVX2 (GGML_NATIVE=OFF)")
    ap.add_argument("--ns", default="1,8")
    ap.add_argument("--steps", type=int, default=96)
    ap.add_argument("--threads", default="auto")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).with_name("build-ab.json")))
    args = ap.parse_args()
    builds = {"native (GGML_NATIVE=ON, the default)": None, args.other_name: args.other}
    runs: dict[str, list[dict]] = {name: [] for name in builds}
    for r in range(args.repeats):
        order = list(builds) if r % 2 == 0 else list(reversed(builds))
        for name in order:
            print(f"repeat {r + 1}/{args.repeats}: {name}", file=sys.stderr, flush=True)
            runs[name].append(bench(builds[name], args.ns, args.steps, args.threads))
    summary = {}
    for name, rs in runs.items():
        per_n = {}
        for i, row in enumerate(rs[0]["results"]):
            per_n[row["n"]] = {
                "batched_tok_s": statistics.median(x["results"][i]["batched_tok_s"] for x in rs),
                "sequential_tok_s": statistics.median(x["results"][i]["sequential_tok_s"] for x in rs),
                "prompt_tok_s": statistics.median(x["results"][i]["batched_prompt_tok_s"] for x in rs),
            }
        summary[name] = {"system_info": rs[0]["system_info"], "median": per_n}
    native, other = (summary[n]["median"] for n in builds)
    ratios = {n: round(other[n]["batched_tok_s"] / native[n]["batched_tok_s"], 3) for n in native}
    shown = {**vars(args), "out": os.path.relpath(args.out)}  # no absolute path of this machine
    report = {"args": shown, "env": runs[next(iter(builds))][0]["env"], "summary": summary,
              "other_over_native_decode": ratios, "runs": runs}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    for name, s in summary.items():
        print(name, {n: v["batched_tok_s"] for n, v in s["median"].items()})
    print("other / native decode tok/s:", ratios, "->", args.out)


if __name__ == "__main__":
    main()
