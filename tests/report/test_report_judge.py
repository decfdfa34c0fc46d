import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from report_fixtures import JUDGE_NAME, RuleJudgeLM

from cf_tasks.report.judge import (
    JudgeParseError,
    LmEvalJudge,
    OpenAIJudge,
    judge_responses,
    load_rubric,
    parse_judge_scores,
)

@pytest.mark.parametrize(
    "reply,expected",
    [
        ("PLANNING: 4\nEXECUTION: 3", (4, 3)),
        ("**Planning:** 5/5\n**Execution:** 2 / 5", (5, 2)),
        ("Planning score (1-5): 3. Execution score: 4.5", (3, 4.5)),
        ("planning=1, execution=5", (1, 5)),
        ('Verdict: {"planning": 4, "execution": {"score": 2}}', (4, 2)),
        ("<think>Planning: 1, Execution: 1</think>\nPLANNING: 4\nEXECUTION: 4", (4, 4)),
        ("Planning: 2 ... on reflection, Planning: 3\nExecution: 3", (3, 3)),
        ("Planning - 4\nExecution out of five: Execution 2 out of 5", (4, 2)),
    ],
)
def test_parse_judge_scores_formats(reply, expected):
    s = parse_judge_scores(reply)
    assert (s.planning, s.execution) == expected


@pytest.mark.parametrize(
    "reply,match",
    [
        ("", "empty"),
        ("Great answer!", "no planning score"),
        ("Planning: 4", "no execution score"),
        ("Planning: 7\nExecution: 3", "outside 1-5"),
        ("Planning: 8/10\nExecution: 3/10", "/10 scale"),
        ("Planning: 0\nExecution: 3", "outside 1-5"),
    ],
)
def test_parse_judge_scores_rejects(reply, match):
    with pytest.raises(JudgeParseError, match=match):
        parse_judge_scores(reply)


def test_rubric_is_versioned_and_rendered(tmp_path):
    rubric = load_rubric("judge_v1")
    assert rubric.version == "judge_v1"
    text = rubric.render("def f(x): return {x}", "\\boxed{3}", "\\boxed{3}")
    assert "def f(x): return {x}" in text and "PLANNING: <integer 1-5>" in text
    custom = tmp_path / "mine.md"
    custom.write_text("---\nrubric_version: mine_v2\n---\nP={{problem}} R={{response}}")
    assert load_rubric(str(custom)).version == "mine_v2"
    bad = tmp_path / "bad.md"
    bad.write_text("no placeholders here")
    with pytest.raises(ValueError, match="placeholder"):
        load_rubric(str(bad))
    with pytest.raises(ValueError, match="packaged rubrics: judge_v1"):
        load_rubric("judge_v0")


def test_lm_eval_backend_end_to_end():
    judge = LmEvalJudge(JUDGE_NAME, "style=json")
    docs = [{"prompt": "p", "answer": [7]}] * 3
    items = list(zip(docs, ["r = 4 so \\boxed{7}", "\\boxed{9}", "GARBLED"]))
    seen = []
    verdicts = judge_responses(judge, items, load_rubric(), batch_size=2, on_batch=lambda start, b: seen.append((start, len(b))))
    assert [(v.planning, v.execution) for v in verdicts] == [(5, 4), (2, 1), (None, None)]
    assert verdicts[2].error and "no planning score" in verdicts[2].error
    assert seen == [(0, 2), (2, 1)]
    assert isinstance(judge.lm, RuleJudgeLM) and judge.lm.style == "json"


def test_unknown_lm_eval_judge_model():
    with pytest.raises(ValueError, match="judge_model"):
        LmEvalJudge("no-such-judge-model-xyz").generate(["x"])


def test_openai_compatible_endpoint(monkeypatch):
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.path, self.headers.get("Authorization"), body))
            reply = {"choices": [{"message": {"role": "assistant", "content": "PLANNING: 3\nEXECUTION: 2"}}]}
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("CF_TEST_JUDGE_KEY", "sk-test")
        judge = OpenAIJudge(f"http://127.0.0.1:{server.server_port}/v1", "judge-x", api_key_env="CF_TEST_JUDGE_KEY")
        (v,) = judge_responses(judge, [({"prompt": "p", "answer": [1]}, "\\boxed{1}")], load_rubric())
    finally:
        server.shutdown()
        server.server_close()
    assert (v.planning, v.execution) == (3, 2)
    path, auth, body = received[0]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-test"
    assert body["model"] == "judge-x" and "\\boxed{1}" in body["messages"][0]["content"]


def test_hf_backend_through_lm_eval_registry(tiny_lm_dir):
    """The judge drives a real lm-eval ``hf`` model (a tiny local GPT-2) through generate_until."""
    judge = LmEvalJudge("hf", f"pretrained={tiny_lm_dir},dtype=float32,max_length=512",
                        gen_kwargs={"until": [], "max_gen_toks": 6, "do_sample": False}, device="cpu",
                        chat_template=True)
    items = [({"prompt": "def f(x): return x", "answer": [3]}, "\\boxed{3}")] * 2
    verdicts = judge_responses(judge, items, load_rubric(), batch_size=2)
    assert type(judge.lm).__name__ == "HFLM"
    assert len(verdicts) == 2 and all(isinstance(v.reply, str) for v in verdicts)
    # a random tiny model cannot produce a verdict: recorded as unparsed, never guessed
    assert all(v.planning is None and v.error for v in verdicts)
    assert verdicts[0].reply == verdicts[1].reply  # greedy decoding is deterministic


def test_hf_judge_without_a_device_runs_where_there_is_no_gpu(tiny_lm_dir):
    """``--judge-device`` left out: the judge picks CUDA only when there is one (lm-eval's hf default is cuda)."""
    import torch

    judge = LmEvalJudge("hf", f"pretrained={tiny_lm_dir},dtype=float32,max_length=512",
                        gen_kwargs={"until": [], "max_gen_toks": 2, "do_sample": False})
    assert len(judge.generate(["hello"])) == 1
    assert judge.lm.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
