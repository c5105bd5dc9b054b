"""GGUF <-> Hugging Face round trip (openmuse.train.gguf_io) on the real packaged SmolLM2, on CPU.

The packaged Q4_1 GGUF is dequantised into an fp32 HF model, saved, and exported back as q8_0, f16
and f32 GGUFs carrying the source's metadata; the project's local engine (llama.cpp) then loads
them. What is asserted, and why:

- f32 export read back with ``load_hf`` gives every parameter bit-identical: the q/k permutation
  written is exactly the one transformers' GGUF loader undoes, and nothing else is changed.
- Every metadata field of the source (tokenizer, merges, chat template, names...) is copied with
  the same value; only ``general.file_type`` / ``general.quantization_version`` differ.
- f16 export: the local engine's greedy answers to three prompts equal the HF model's greedy
  answers (same weights up to f16 rounding), and on a 40-token text llama.cpp's top-1 next token
  equals the HF model's at every position, logits within 0.5.
- q8_0 export: top-1 agreement with the HF model on that text is at least 90% (measured 39/40:
  q8_0 rounds the weights, and llama.cpp also rounds activations to 8 bits for q8_0 matmuls).
- The packaged Q4_1 file itself is NOT compared answer-for-answer: llama.cpp rounds activations
  for Q4_1 matmuls, so on "What is the capital of France?" it drifts ("L'Etoile, ...") where the
  fp32 dequantised weights (and the f16 export) answer "The capital of France is Paris."
- Missing, corrupt or non-GGUF input gives ``ConfigError`` with a one-line message.

Run: `.venv/bin/pytest -q tests/test_train_gguf.py` (about 1-2 minutes; nothing is downloaded).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
gguf = pytest.importorskip("gguf")
pytest.importorskip("transformers")

from openmuse.engines import EngineSettings, create_engine  # noqa: E402
from openmuse.engines.local import default_model_path  # noqa: E402
from openmuse.errors import ConfigError  # noqa: E402
from openmuse.train import gguf_io  # noqa: E402
from openmuse.types import ChatRequest  # noqa: E402

PROMPTS = ["What is the capital of France?", "Name three primary colors.", "What is 2 plus 2?"]
TEXT = ("The capital of France is Paris. It is known for the Eiffel Tower, museums such as the "
        "Louvre, and its cafes. Many tourists visit every year to enjoy the food and art.")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """The dequantised model, its tokenizer, and exports (f16 from the saved folder, q8_0 and f32
    from the model object)."""
    root = tmp_path_factory.mktemp("gguf_io")
    model, tok = gguf_io.load_hf()
    hf_dir = gguf_io.save_hf(model, tok, root / "hf")
    files = {
        "f16": gguf_io.export_gguf(hf_dir, root / "m.f16.gguf", ftype="f16"),
        "q8_0": gguf_io.export_gguf(model, root / "m.q8_0.gguf", ftype="q8_0"),
        "f32": gguf_io.export_gguf(model, root / "m.f32.gguf", ftype="f32"),
    }
    return model, tok, files


def _hf_answer(model, tok, prompt: str, n: int = 40) -> str:
    enc = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=n, do_sample=False)
    return tok.decode(out[0][enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def _llama_logits(path, ids: list[int]) -> np.ndarray:
    from llama_cpp import Llama

    llm = Llama(str(path), n_ctx=256, logits_all=True, verbose=False, n_threads=2)
    try:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)])
    finally:
        llm.close()


def test_load_hf_is_plain_trainable_model(work):
    model, tok, _ = work
    assert type(model).__name__ == "LlamaForCausalLM"
    assert getattr(model.config, "quantization_config", None) is None
    assert not getattr(model, "is_quantized", False)
    assert model.dtype == torch.float32
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert tok.chat_template and "<|im_start|>" in tok.chat_template


def test_permutation_is_inverse_and_matches_transformers():
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    undo = LlamaTensorProcessor(config={})._reverse_permute_weights
    for heads in (3, 9):
        w = np.arange(heads * 64 * 6, dtype=np.float32).reshape(heads * 64, 6)
        p = gguf_io.permute_qk(w, heads)
        assert not np.array_equal(p, w)
        assert np.array_equal(gguf_io.unpermute_qk(p, heads), w)
        assert np.array_equal(undo(p, heads), w)  # what load_hf relies on when reading


def test_f32_round_trip_is_exact(work):
    model, _, files = work
    back, tok = gguf_io.load_hf(files["f32"])
    ours, theirs = model.state_dict(), back.state_dict()
    assert ours.keys() == theirs.keys()
    for name, value in ours.items():
        assert torch.equal(value, theirs[name]), name
    assert tok.chat_template == work[1].chat_template


@pytest.mark.parametrize("ftype", ["f16", "q8_0"])
def test_metadata_copied(work, ftype):
    src = gguf.GGUFReader(default_model_path())
    dst = gguf.GGUFReader(work[2][ftype])
    changed = {"general.file_type", "general.quantization_version", "GGUF.tensor_count", "GGUF.kv_count"}
    for key, field in src.fields.items():
        if key in changed:
            continue
        assert key in dst.fields, key
        assert dst.fields[key].contents() == field.contents(), key
    template = "tokenizer.chat_template"
    assert dst.fields[template].contents() == src.fields[template].contents()
    want = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[ftype]
    assert dst.fields["general.file_type"].contents() == int(want)
    names = {t.name for t in dst.tensors}
    assert names == {t.name for t in src.tensors}  # same tensors (tied output: none written)
    assert len(names) == 272 and "output.weight" not in names


def test_f16_export_answers_like_hf_model(work):
    model, tok, files = work
    engine = create_engine(EngineSettings(model=str(files["f16"]), n_ctx=1024, n_seq_max=1))
    try:
        for prompt in PROMPTS:
            got = engine.generate(ChatRequest(messages=[{"role": "user", "content": prompt}], max_tokens=40))
            assert got.text.strip() == _hf_answer(model, tok, prompt), prompt
    finally:
        engine.close()


@pytest.mark.parametrize("ftype,min_agree,max_diff", [("f16", 1.0, 0.5), ("q8_0", 0.9, None)])
def test_next_token_agrees_with_hf(work, ftype, min_agree, max_diff):
    model, tok, files = work
    ids = tok(TEXT)["input_ids"]
    with torch.no_grad():
        hf = model(torch.tensor([ids])).logits[0].numpy()
    lc = _llama_logits(files[ftype], ids)
    agree = float((lc.argmax(-1) == hf.argmax(-1)).mean())
    assert agree >= min_agree, agree
    if max_diff is not None:
        assert float(np.abs(lc - hf).max()) < max_diff


def test_q8_0_export_answers(work):
    engine = create_engine(EngineSettings(model=str(work[2]["q8_0"]), n_ctx=1024, n_seq_max=1))
    try:
        got = engine.generate(ChatRequest(messages=[{"role": "user", "content": PROMPTS[2]}], max_tokens=30))
        assert "4" in got.text
    finally:
        engine.close()


def test_sizes(work):
    sizes = {k: v.stat().st_size for k, v in work[2].items()}
    assert sizes["q8_0"] < sizes["f16"] < sizes["f32"]
    assert 130e6 < sizes["q8_0"] < 160e6


def test_bad_inputs_give_one_line_config_error(tmp_path, work):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all" * 10)
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(default_model_path().read_bytes()[:4096])
    for path in (bad, truncated, tmp_path / "missing.gguf"):
        with pytest.raises(ConfigError) as err:
            gguf_io.load_hf(path)
        assert "\n" not in str(err.value) and str(err.value)
        with pytest.raises(ConfigError) as err:
            gguf_io.export_gguf(work[0], tmp_path / "o.gguf", like=path)
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError):
        gguf_io.export_gguf(work[0], tmp_path / "o.gguf", ftype="q4_k")
    assert not list(tmp_path.glob("*.tmp")) and not (tmp_path / "o.gguf").exists()


def test_cli_reports_errors(tmp_path, capsys):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"XXXX")
    assert gguf_io.main(["dequantise", "--gguf", str(bad), "--out", str(tmp_path / "d")]) == 2
    assert "not a GGUF" in capsys.readouterr().err
