"""``circuits explore``: the explorer's analyses, its checks of bad requests, and its HTTP server (loopback, clear errors, no crash)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from circuits import Transformer, TransformerConfig
from circuits.training.checkpoint import save_checkpoint
from circuits.training.tokenizer import Tokenizer
from circuits.views.explore import MAX_CHARS, Explorer, RequestError
from circuits.views.server import make_server

TEXTS = ["def add(a, b):\n    return a + b\n" * 3, "the quick brown fox jumps over the lazy dog " * 4, "import json\nimport os\n"] * 10


def tiny_checkpoint(folder: Path) -> Path:
    """A random two-layer attention-only model with a small trained tokenizer, saved as a circuits checkpoint."""
    tokenizer = Tokenizer.train(TEXTS, vocab_size=290)
    torch.manual_seed(0)
    cfg = TransformerConfig(n_layers=2, d_model=32, n_heads=4, d_head=8, d_vocab=290, n_ctx=40, attn_only=True)
    return save_checkpoint(folder, Transformer(cfg).eval(), tokenizer, {"step": 0})


@pytest.fixture(scope="module")
def explorer(tmp_path_factory) -> Explorer:
    return Explorer.open(tiny_checkpoint(tmp_path_factory.mktemp("explore") / "ckpt"))


def test_analysis_gives_every_view(explorer):
    out = explorer.analyze({"text": "def add(a, b): return a + b", "position": 3})
    n = len(out["tokens"])
    assert out["tokens"][0] == "<|bos|>" and out["position"] == 3
    assert out["attention"]["labels"] == explorer.info()["heads"] and len(out["attention"]["patterns"][0]) == n
    assert out["loss"]["series"][0]["values"][0] is None and len(out["loss"]["series"][0]["values"]) == n
    assert len(out["lens"]["layers"]) == 3 and out["lens_error"] is None
    parts = out["attribution"]["components"]
    assert abs(sum(v for _, v in parts) - out["attribution"]["logit"]) < 1e-4 and out["attribution_error"] is None


def test_ablation_zeroes_the_head_and_changes_the_loss(explorer):
    out = explorer.analyze({"text": "def add(a, b): return a + b", "ablate": ["L0H1"]})
    assert out["ablated"] == ["L0H1"]
    assert dict(out["attribution"]["components"])["L0H1"] == 0.0
    names = [s["name"] for s in out["loss"]["series"]]
    assert names[0] == "loss change with ablation" and "loss clean" in names
    parts = out["attribution"]["components"]
    assert abs(sum(v for _, v in parts) - out["attribution"]["logit"]) < 1e-4


@pytest.mark.parametrize("request_, message", [
    ({"text": "word " * 200}, "context holds 40"),
    ({"text": "x" * (MAX_CHARS + 1)}, "at most"),
    ({"text": ""}, "type some text"),
    ({"text": 3}, "must be a string"),
    ({"text": "abc", "ablate": ["L7H0"]}, "unknown head 'L7H0'"),
    ({"text": "abc", "ablate": "L0H0"}, "list of head labels"),
    ({"text": "abc", "position": 99}, "outside the"),
    ({"text": "abc", "top_k": 0}, "top_k"),
    ({"text": "abc", "path": "/etc"}, "unknown field"),
    (["abc"], "JSON object"),
])
def test_bad_requests_name_the_problem(explorer, request_, message):
    with pytest.raises(RequestError, match=message):
        explorer.analyze(request_)


def test_explorer_refuses_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        Explorer.open(tmp_path / "nothing")


def post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture(scope="module")
def server(explorer):
    server = make_server(explorer, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_server_listens_on_loopback_only(server):
    assert server.startswith("http://127.0.0.1:")


def test_server_answers_bad_requests_with_a_message_and_keeps_serving(server):
    cases = [
        (b'{"text": "abc", "ablate": ["L9H9"]}', 400, "unknown head"),
        (b"not json", 400, "not UTF-8 JSON"),
        (b'{"text": "' + b"word " * 200 + b'"}', 400, "context holds"),
        (b'{"text": "abc", "path": "/etc/passwd"}', 400, "unknown field"),
    ]
    for body, status, message in cases:
        code, answer = post(server + "/api/analyze", body)
        assert code == status and message in answer["error"], (body[:40], code, answer)
    code, answer = post(server + "/api/analyze", b'{"text": "def add(a, b)"}')
    assert code == 200 and answer["tokens"][0] == "<|bos|>"


def test_server_serves_nothing_but_its_page_and_api(server):
    code, page = get(server + "/")
    assert code == 200 and b"circuits-views-js" in page and b"http://" not in page and b"https://" not in page
    for path in ("/../../etc/passwd", "/config.json", "/model.safetensors", "/api/nothing"):
        code, body = get(server + path)
        assert code == 404 and b"no page" in body
    code, info = get(server + "/api/info")
    assert code == 200 and json.loads(info)["n_ctx"] == 40


def test_explorer_opens_a_hugging_face_folder(tmp_path):
    from circuits.hf import export_hf

    tokenizer = Tokenizer.train(TEXTS, vocab_size=290)
    cfg = TransformerConfig(n_layers=2, d_model=32, n_heads=4, d_head=8, d_vocab=290, n_ctx=40, d_mlp=64)
    model = Transformer(cfg).eval()
    model.tokenizer = tokenizer
    folder = export_hf(model, tmp_path / "hf", architecture="gpt2")
    out = Explorer.open(folder).analyze({"text": "def add(a, b)", "ablate": ["L1H2"]})
    assert out["attribution_error"] is None and dict(out["attribution"]["components"])["L1H2"] == 0.0
    assert "mlp0" in dict(out["attribution"]["components"])


def test_cli_names_a_bad_path_or_port(tmp_path, capsys):
    from circuits.cli import main

    assert main(["explore", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["explore", str(tmp_path), "--port", "70000"]) == 2
    assert "--port 70000" in capsys.readouterr().err


def test_cli_serves_on_loopback(explorer, tmp_path):
    import re
    import subprocess
    import sys

    folder = tiny_checkpoint(tmp_path / "ckpt")
    process = subprocess.Popen([sys.executable, "-m", "circuits", "explore", str(folder), "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line
        code, info = get(f"http://127.0.0.1:{match.group(1)}/api/info")
        assert code == 200 and json.loads(info)["source"] == str(folder)
    finally:
        process.terminate()
        process.wait(timeout=30)
