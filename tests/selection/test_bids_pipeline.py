"""The whole BIDS pipeline on a tiny local model and toy tasks, including interruption and resume."""

import json

import numpy as np
import pytest
import torch

from selection.bids import features as features_mod
from selection.bids import influence as influence_mod
from selection.bids import warmup as warmup_mod
from selection.bids.config import BidsConfig, FeatureConfig, SelectConfig, WarmupConfig
from selection.bids.pipeline import run_pipeline
from selection.cli import main as cf_select


class Interrupt(Exception):
    pass


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _toy_data(tmp_path):
    train = []
    for i in range(24):
        if i % 3 == 0:
            train.append({"id": i, "prompt": f"Question: what is {i} + 3? Answer:", "completion": f" {i + 3}"})
        elif i % 3 == 1:
            train.append({"id": i, "prompt": f"def f(x, r):\n    if x > {i}:",
                          "completion": f"\n        return x + {i}\n"})
        else:
            train.append({"id": i, "messages": [{"role": "user", "content": f"Give the answer {i}"},
                                                {"role": "assistant", "content": f"The answer is \\boxed{{{i}}}."}]})
    math_val = [{"prompt": f"Question: what is {i} + 5? Answer:", "completion": f" {i + 5}"} for i in range(3)]
    code_val = [{"prompt": "def f(x, r):\n    if x > 3:", "completion": f"\n        return r - {i}\n"}
                for i in range(2)]
    return (_write_jsonl(tmp_path / "train.jsonl", train), _write_jsonl(tmp_path / "math.jsonl", math_val),
            _write_jsonl(tmp_path / "code.jsonl", code_val), train)


SMALL = ["--epochs", "2", "--lora-r", "4", "--lora-alpha", "16", "--batch-size", "4", "--micro-batch-size", "4",
         "--learning-rate", "1e-3", "--warmup-fraction", "0.5", "--target-modules", "c_attn", "--proj-dim", "64",
         "--shard-size", "8", "--grad-batch-size", "8", "--device", "cpu", "--budget", "6"]


def _config(model, train, math_val, code_val, work, output):
    return BidsConfig(
        model=str(model), train=str(train), val=[f"math={math_val}", f"code={code_val}"], work_dir=str(work),
        output=str(output), plot=False,
        warmup=WarmupConfig(epochs=2, lora_r=4, lora_alpha=16, batch_size=4, micro_batch_size=4, learning_rate=1e-3,
                            warmup_fraction=0.5, target_modules=["c_attn"]),
        features=FeatureConfig(proj_dim=64, shard_size=8, grad_batch_size=8, device="cpu"),
        select=SelectConfig(budget="6"),
    )


@pytest.fixture(scope="module")
def reference_run(tiny_lm_dir, tmp_path_factory):
    """One uninterrupted run through the ``cf-select bids`` command."""
    tmp = tmp_path_factory.mktemp("bids_ref")
    train, math_val, code_val, rows = _toy_data(tmp)
    out = tmp / "sel" / "selected.json"
    code = cf_select(["bids", "--model", str(tiny_lm_dir), "--train", str(train), "--val", f"math={math_val}",
                      f"code={code_val}", "--work-dir", str(tmp / "work"), "--output", str(out), "--no-progress",
                      *SMALL])
    assert code == 0
    return tmp, (train, math_val, code_val, rows), out


def test_pipeline_outputs(reference_run):
    tmp, (_, _, _, rows), out = reference_run
    work = tmp / "work"
    A = np.load(work / "influence.npy")
    assert A.shape == (24, 5) and A.dtype == np.float64 and np.isfinite(A).all()
    assert np.abs(A).max() <= 1.0 + 1e-9  # a weighted average of cosines (weights sum to 1)
    assert json.loads((work / "tasks.json").read_text()) == ["math"] * 3 + ["code"] * 2
    sel = json.loads(out.read_text())
    assert len(sel["indices"]) == 6 == len(set(sel["indices"])) and sel["method"] == "bids" and sel["normalized"]
    assert sum(sel["diagnostics"]["task_histogram"].values()) == 6
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    selected_rows = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert selected_rows == [rows[i] for i in sel["indices"]]
    states = [json.loads((work / "warmup" / f"epoch-{e}" / "state.json").read_text()) for e in (1, 2)]
    assert states[0]["avg_lr"] > states[1]["avg_lr"] > 0  # linear decay: epoch weights differ
    # Matrix = weighted cosines of the stored features (recomputed here from the shards).
    weights = np.array([s["avg_lr"] for s in states]) / sum(s["avg_lr"] for s in states)
    expected = sum(
        w * features_mod.load_shards(work / "features" / f"epoch-{e}" / "train").astype(np.float64)
        @ features_mod.load_shards(work / "features" / f"epoch-{e}" / "val").astype(np.float64).T
        for w, e in zip(weights, (1, 2)))
    assert np.allclose(A, expected)


def test_features_use_the_checkpoint_adam_moments(reference_run, tiny_lm_dir):
    """A stored training feature equals the projected Adam transform computed here by hand."""
    from selection.bids.checkpoints import load_adam_moments
    from selection.bids.config import DataConfig
    from selection.bids.data import collate, encode_row
    from selection.bids.gradients import loop_per_example_gradients
    from selection.bids.modeling import attach_adapter, load_base_model, load_tokenizer
    from selection.bids.projection import DenseProjector

    tmp, (_, _, _, rows), _ = reference_run
    ckpt = tmp / "work" / "warmup" / "epoch-2"
    model = attach_adapter(load_base_model(str(tiny_lm_dir)), ckpt)
    tok = load_tokenizer(str(tiny_lm_dir))
    ids, mask, labels = collate([encode_row(rows[5], tok, DataConfig())], tok.pad_token_id)
    g = loop_per_example_gradients(model, ids, mask, labels)
    mom = load_adam_moments(ckpt)
    assert set(mom.exp_avg) == set(g) == set(mom.exp_avg_sq)  # moments stored by parameter name
    assert all(mom.exp_avg_sq[n].min() >= 0 for n in g) and any(mom.exp_avg[n].abs().sum() > 0 for n in g)
    hand = {n: (0.9 * mom.exp_avg[n] + 0.1 * g[n]) / torch.sqrt(0.999 * mom.exp_avg_sq[n] + 0.001 * g[n] ** 2 + 1e-8)
            for n in g}
    feat = DenseProjector({n: t.shape[1:] for n, t in g.items()}, 64, 0).project(hand)[0]
    feat = (feat / feat.norm()).numpy()
    stored = np.load(tmp / "work" / "features" / "epoch-2" / "train" / "shard-00000.npy")[5]
    assert np.allclose(stored, feat, atol=1e-5)


def test_interrupted_runs_resume_to_identical_outputs(reference_run, tiny_lm_dir, tmp_path, monkeypatch):
    ref_tmp, (train, math_val, code_val, _), ref_out = reference_run
    work = tmp_path / "work"
    out = tmp_path / "sel" / "selected.json"
    config = _config(tiny_lm_dir, train, math_val, code_val, work, out)

    # 1. Killed while saving the second warm-up epoch.
    real_write = warmup_mod.write_checkpoint

    def write_then_die(root, epoch, state, contents):
        if epoch == 2:
            raise Interrupt()
        return real_write(root, epoch, state, contents)

    monkeypatch.setattr(warmup_mod, "write_checkpoint", write_then_die)
    with pytest.raises(Interrupt):
        run_pipeline(config, progress=False)
    assert (work / "warmup" / "epoch-1").is_dir() and not (work / "warmup" / "epoch-2").exists()
    epoch1_mtime = (work / "warmup" / "epoch-1" / "adapter_model.safetensors").stat().st_mtime_ns
    monkeypatch.setattr(warmup_mod, "write_checkpoint", real_write)

    # 2. Resumes the warm-up, then dies during the third feature shard.
    calls = []
    real_call = features_mod.GradientFeaturizer.__call__

    def featurize(self, examples, bar=None, limit=None):
        calls.append(len(examples))
        if limit is not None and len(calls) == limit:
            raise Interrupt()
        return real_call(self, examples, bar)

    monkeypatch.setattr(features_mod.GradientFeaturizer, "__call__", lambda s, e, b=None: featurize(s, e, b, 3))
    with pytest.raises(Interrupt):
        run_pipeline(config, progress=False)
    assert (work / "warmup" / "epoch-1" / "adapter_model.safetensors").stat().st_mtime_ns == epoch1_mtime
    assert sorted(p.name for p in (work / "features" / "epoch-1" / "train").glob("shard-*.npy")) == \
        ["shard-00000.npy", "shard-00001.npy"]

    # 3. Finishes the features (only the 6 missing shards of 8), dies in the matrix after shard 0.
    calls.clear()
    monkeypatch.setattr(features_mod.GradientFeaturizer, "__call__", lambda s, e, b=None: featurize(s, e, b))
    real_json = influence_mod.write_json

    def json_then_die(path, obj, **kw):
        if isinstance(obj, dict) and len(obj.get("done", [])) == 2:
            raise Interrupt()
        return real_json(path, obj, **kw)

    monkeypatch.setattr(influence_mod, "write_json", json_then_die)
    with pytest.raises(Interrupt):
        run_pipeline(config, progress=False)
    assert len(calls) == 6
    assert json.loads((work / "influence.progress.json").read_text())["done"] == [0]
    assert not (work / "influence.npy").exists() and (work / "influence.npy.partial").exists()

    # 4. Completes without recomputing any feature shard.
    calls.clear()
    monkeypatch.setattr(influence_mod, "write_json", real_json)
    run_pipeline(config, progress=False)
    assert calls == []

    ref_work = ref_tmp / "work"
    assert np.array_equal(np.load(work / "influence.npy"), np.load(ref_work / "influence.npy"))
    from safetensors.torch import load_file

    for e in (1, 2):
        a = load_file(str(work / "warmup" / f"epoch-{e}" / "adapter_model.safetensors"))
        b = load_file(str(ref_work / "warmup" / f"epoch-{e}" / "adapter_model.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    mine, ref = json.loads(out.read_text()), json.loads(ref_out.read_text())
    assert mine["indices"] == ref["indices"] and mine["diagnostics"] == ref["diagnostics"]

    # A finished work folder: every stage is skipped; the plugin's library call gives the same selection.
    from selection.bids.plugin import SELECTOR

    rows = [json.loads(line) for line in train.read_text().splitlines()]
    again = SELECTOR.select(rows, config)
    assert calls == [] and again.indices == ref["indices"]


def test_changed_settings_are_refused(reference_run, tiny_lm_dir, tmp_path):
    ref_tmp, (train, math_val, code_val, _), _ = reference_run
    config = _config(tiny_lm_dir, train, math_val, code_val, ref_tmp / "work", tmp_path / "x.json")
    config.warmup.learning_rate = 5e-4
    with pytest.raises(ValueError, match="other settings"):
        run_pipeline(config, progress=False)


def test_features_of_another_projection_are_refused(reference_run, tiny_lm_dir, tmp_path):
    ref_tmp, (train, math_val, code_val, _), _ = reference_run
    config = _config(tiny_lm_dir, train, math_val, code_val, ref_tmp / "work", tmp_path / "x.json")
    config.features.projection = "factored"
    with pytest.raises(ValueError, match=r"other settings \(projection\)"):
        run_pipeline(config, progress=False)
