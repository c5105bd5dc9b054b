"""Device sweep, run 6: the run-5 recipe (all-MiniLM-L6-v2 fine-tuned, linear head) on the old
training rows and on the rows with the broad files; dev scores per config, per dev file."""
import io, json, os, random, time, numpy as np, torch
from transformers import AutoTokenizer, AutoModel, AutoConfig
T0 = time.time(); OUT = os.environ.get("OUT", ".devft"); dev = "cpu" if os.environ.get("SMOKE") else "cuda"
D = json.load(open(".devft/data6.json"))
LABELS = ["safe","cbrn","violent_crimes","nonviolent_crimes","cyber","sex_crimes","child_sexual","hate","self_harm","sexual_content","misinformation","privacy"]
tok = AutoTokenizer.from_pretrained(".devft/model6"); cfg = AutoConfig.from_pretrained(".devft/model6")
pk = torch.load(".devft/model6/packed.pt"); base = {}
for k, v in pk.items():
    if k.endswith(".q"): base[k[:-2]] = v.float() * pk[k[:-2] + ".s"]
    elif not k.endswith(".s") and k != "used_ids": base[k] = v.float()
W = torch.zeros(cfg.vocab_size, cfg.hidden_size); W[pk["used_ids"]] = base["embeddings.word_embeddings.weight"]
base["embeddings.word_embeddings.weight"] = W
devs = D["dev"]; dtx = [d["text"] for d in devs]
def run(rows, lr=1e-4, ep=6, ml=64, seed=0, bs=32):
    texts = [r[0] for r in rows]; Y = torch.tensor([LABELS.index(r[1]) for r in rows])
    torch.manual_seed(seed); rng = random.Random(seed)
    enc = AutoModel.from_config(cfg); enc.load_state_dict(base, strict=False); enc.to(dev)
    head = torch.nn.Linear(384, 12).to(dev)
    cnt = torch.bincount(Y, minlength=12).float(); w = cnt.sum() / (12 * cnt.clamp(min=1))
    lossf = torch.nn.CrossEntropyLoss(weight=w.to(dev))
    opt = torch.optim.AdamW(list(enc.parameters()) + list(head.parameters()), lr=lr, weight_decay=0.01)
    steps = max(1, int(ep * len(texts) / bs))
    sch = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1, anneal_strategy="linear")
    def pool(batch):
        t = tok(batch, padding=True, truncation=True, max_length=ml, return_tensors="pt").to(dev)
        h = enc(**t).last_hidden_state; m = t["attention_mask"].unsqueeze(-1).float()
        return (h * m).sum(1) / m.sum(1)
    enc.train(); order = []
    for s in range(steps):
        if not order: order = list(range(len(texts))); rng.shuffle(order)
        idx = [order.pop() for _ in range(min(bs, len(order)))]
        loss = lossf(head(pool([texts[i] for i in idx])), Y[idx].to(dev))
        opt.zero_grad(); loss.backward(); opt.step(); sch.step()
    enc.eval()
    def scores(tx):
        out = []
        with torch.no_grad():
            for i in range(0, len(tx), 128):
                lp = torch.log_softmax(head(pool(tx[i:i+128])), -1)
                out += (torch.logsumexp(lp[:, 1:], -1) - lp[:, 0]).tolist()
        return out
    return scores(dtx), scores(D["med"]), enc, head
old = [r for r in D["rows"] if not r[2]]; allr = D["rows"]
smoke = bool(os.environ.get("SMOKE"))
configs = [("all_s0", allr, {}), ("old_s0", old, {}), ("all_s1", allr, {"seed": 1}), ("old_s1", old, {"seed": 1}),
           ("all_s2", allr, {"seed": 2}), ("all_ep8", allr, {"ep": 8})]
if smoke: configs = [("all_s0", allr[:64], {"ep": 1})]
res = {}
for name, rows, kw in configs:
    t0 = time.time(); s, ms, enc, head = run(rows, **kw)
    res[name] = {"s": round(time.time() - t0, 1), "dev": s, "med": ms, "n": len(rows)}
    print(name, res[name]["s"], "s", flush=True)
    json.dump(res, open(f"{OUT}/sweep6.json", "w"))
    if time.time() - T0 > 420: break
print("total", round(time.time() - T0), "s")
