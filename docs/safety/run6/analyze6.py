"""Dev figures of run 6's sweep: threshold at 3 % of all dev safe texts, recall and false refusals per dev file."""
import json, sys, numpy as np
D = json.load(open(".devft/data6.json")); R = json.load(open(sys.argv[1])) if len(sys.argv) > 1 else {}
devs = D["dev"]; safe = np.array([d["label"] == "safe" for d in devs]); f = np.array([d["file"] for d in devs])
def m(sc, med):
    sc = np.asarray(sc); med = np.asarray(med); tau = np.quantile(sc[safe], 0.97)
    r = {"all_rec": (sc[~safe] >= tau).mean()}
    for name in sorted(set(f)):
        r[name + "_rec"] = (sc[~safe & (f == name)] >= tau).mean(); r[name + "_fpr"] = (sc[safe & (f == name)] >= tau).mean()
    r["med_fpr"] = (med >= tau).mean()
    return {k: round(float(v), 3) for k, v in r.items()}
rows = {"e5 (run4 shipped)": m(D["e5"], D["e5_med"]), "minilm (run5 shipped)": m(D["minilm"], D["minilm_med"]),
        "ens e5+run5": m(np.add(D["e5"], D["minilm"]), np.add(D["e5_med"], D["minilm_med"]))}
for k, v in R.items():
    rows[k] = m(v["dev"], v["med"]); rows[k + "+e5"] = m(np.add(v["dev"], D["e5"]), np.add(v["med"], D["e5_med"]))
cols = list(next(iter(rows.values())))
print("config".ljust(24), " ".join(c[:14].rjust(14) for c in cols))
for k, v in rows.items(): print(k.ljust(24), " ".join(str(v[c]).rjust(14) for c in cols))
print({str(n): int(((f == n) & ~safe).sum()) for n in sorted(set(f))}, {str(n): int(((f == n) & safe).sum()) for n in sorted(set(f))})
