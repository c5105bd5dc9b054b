"""Rule (a)'s time check: the default classifier's score of each `dev_broad.jsonl` text, one at a
time after one warm-up (what the before-check spends on the classifier), p50/p95 in ms."""
import json, platform, time
import numpy as np
from openmuse.safety.classifier import data_dir, default_classifier
clf = default_classifier()
tx = [json.loads(line)["text"] for line in (data_dir() / "dev_broad.jsonl").read_text().splitlines() if line.strip()]
clf.score("warm up"); ms = []
for t in tx:
    t0 = time.perf_counter(); clf.score(t); ms.append((time.perf_counter() - t0) * 1000)
out = {"set": "safety/data/dev_broad.jsonl", "texts": len(tx), "p50_ms": round(float(np.percentile(ms, 50)), 2),
       "p95_ms": round(float(np.percentile(ms, 95)), 2), "machine": platform.machine(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
print(out); json.dump(out, open("docs/safety/run6/latency_dev.json", "w"), indent=1)
