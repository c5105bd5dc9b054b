"""Build .devft/data6.json: decontaminated training rows (with a flag for the new broad files), the
dev rows kept (with their file), and the shipped classifiers' dev scores through the layer."""
import json, sys
import numpy as np
from openmuse.safety import train as T
from openmuse.safety.classifier import Embedder, default_classifier, data_dir
e5 = Embedder(); held = T.heldout(e5)
rows, _, dropped = T.load_rows(e5, held, print, 0)
broad = set()
for p in sorted(data_dir().glob("train_broad*.jsonl")):
    broad |= {json.loads(l)["text"].lower() for l in p.read_text().splitlines() if l.strip()}
dev_by_file = {}
for p in sorted(data_dir().glob("dev*.jsonl")):
    for l in p.read_text().splitlines():
        if l.strip(): dev_by_file[json.loads(l)["text"]] = p.stem
dev, ddrop = T.dev_kept(e5, held)
print("dropped train", dropped, "dev", ddrop)
med = T.medical_dev()
out = {"rows": [[t, lab, int(t.lower() in broad)] for t, lab, _ in rows],
       "dev": [{**d, "file": dev_by_file[d["text"]]} for d in dev], "med": med}
for name in ("e5", "minilm"):
    clf = default_classifier(name)
    out[name] = [clf.score(d["text"]).logit for d in dev]
    out[name + "_med"] = [clf.score(t).logit for t in med]
    print(name, "scored")
json.dump(out, open(".devft/data6.json", "w"))
print(len(out["rows"]), sum(r[2] for r in out["rows"]), len(out["dev"]))
