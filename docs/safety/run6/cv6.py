"""5-fold cross-validation of the run-6 recipe on its training rows (out-of-fold harm log-odds; recall
at 3 % of the safe rows), the recipe as in sweep6.py."""
import json, os, random, time, numpy as np, torch
from pathlib import Path

src = Path(__file__).with_name("sweep6.py").read_text().split("old = [r for r")[0]  # definitions only
ns = {}; exec(src, ns)
D = ns["D"]; run = ns["run"]; rows = D["rows"][::200] if os.environ.get("SMOKE") else D["rows"]; OUT = os.environ.get("OUT", ".devft")
rng = random.Random(0); order = list(range(len(rows))); rng.shuffle(order)
fold = np.empty(len(rows), int); fold[order] = np.arange(len(rows)) % 5
oof = np.zeros(len(rows)); T0 = time.time()
for f in range(5):
    tr = [rows[i] for i in range(len(rows)) if fold[i] != f]; te = [i for i in range(len(rows)) if fold[i] == f]
    ns["dtx"] = [rows[i][0] for i in te]
    run.__globals__["dtx"] = ns["dtx"]
    s, _, _, _ = run(tr, seed=f)
    oof[te] = s; print("fold", f, round(time.time() - T0), "s", flush=True)
safe = np.array([r[1] == "safe" for r in rows]); tau = np.quantile(oof[safe], 0.97)
LABELS = ns["LABELS"]
res = {"folds": 5, "rows": len(rows), "threshold": round(float(tau), 4), "false_refusal_safe": round(float((oof[safe] >= tau).mean()), 4),
       "recall_harmful": round(float((oof[~safe] >= tau).mean()), 4),
       "recall_by_category": {c: round(float(np.mean([oof[i] >= tau for i, r in enumerate(rows) if r[1] == c])), 4) for c in LABELS[1:]},
       "recall_broad_rows": round(float(np.mean([oof[i] >= tau for i, r in enumerate(rows) if r[2] and r[1] != "safe"])), 4)}
print(res); json.dump(res, open(f"{OUT}/cv6.json", "w"), indent=1)
