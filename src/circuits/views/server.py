"""The explorer's web server: the standard library's ``http.server`` on 127.0.0.1, one page and two JSON endpoints.

``GET /`` the page (the views' shared script and the page's own script inline: nothing else is
fetched); ``GET /api/info`` the model's shape and head labels; ``POST /api/analyze`` a JSON
request (:data:`circuits.views.explore.FIELDS`) -> the views' data. A bad request gets status 400
and ``{"error": "..."}`` (the page shows it); an unexpected failure 500 with the error, and the
server keeps serving. Nothing else is served: no file is read after start.
"""

from __future__ import annotations

import html
import json
import sys
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock

from circuits.views.explore import Explorer, RequestError
from circuits.views.page import head_html

__all__ = ["make_server", "serve", "explorer_page", "MAX_BODY"]

MAX_BODY = 1_000_000  #: bytes of a request body

_PAGE_SCRIPT = r"""
(function () {
var CV = window.CircuitsViews, timer = null, seq = 0;
function $(id) { return document.getElementById(id); }
function request() {
  var ablate = Array.prototype.map.call(document.querySelectorAll('input.ablate:checked'), function (x) { return x.value; });
  var pos = $('position').value.trim();
  return {text: $('text').value, position: pos === '' ? -1 : parseInt(pos, 10), ablate: ablate};
}
function show(id, data, error) {
  var box = $(id);
  if (!data) { box.innerHTML = ''; CV.el('div', {'class': 'cv-note'}, box, error || ''); return; }
  CV.render(box, data);
}
function analyze() {
  var mine = ++seq;
  $('status').textContent = 'working...';
  fetch('/api/analyze', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(request())})
    .then(function (r) { return r.json(); })
    .then(function (d) {
      if (mine !== seq) { return; }
      document.body.setAttribute('data-answered', String(mine));
      if (d.error) { $('error').textContent = d.error; $('error').style.display = 'block'; $('status').textContent = ''; return; }
      $('error').style.display = 'none';
      var old = $('attention').getAttribute('data-head');
      if (old && d.attention.labels.indexOf(old) >= 0) { d.attention.selected = d.attention.labels.indexOf(old); }
      show('loss', d.loss); show('attention', d.attention); show('lens', d.lens, d.lens_error); show('attribution', d.attribution, d.attribution_error);
      $('status').textContent = d.tokens.length + ' tokens' + (d.ablated.length ? ', ablated ' + d.ablated.join(', ') : '');
      document.body.setAttribute('data-analyzed', String(mine));
    })
    .catch(function (e) { $('error').textContent = 'request failed: ' + e; $('error').style.display = 'block'; });
}
function later() { clearTimeout(timer); timer = setTimeout(analyze, 250); }
$('text').addEventListener('input', later); $('position').addEventListener('input', later);
document.querySelectorAll('input.ablate').forEach(function (x) { x.addEventListener('change', analyze); });
$('run').addEventListener('click', analyze);
analyze();
})();
"""

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1em 2em; color: #222; }
textarea { width: 100%; max-width: 900px; height: 5em; font-family: ui-monospace, Menlo, Consolas, monospace; }
#error { display: none; background: #fbe0e0; border: 1px solid #d88; padding: .4em .8em; margin: .4em 0; }
h2 { font-size: 1.1em; margin: 1.2em 0 .3em; border-bottom: 1px solid #ddd; }
.controls label { margin-right: 1em; }
"""


def explorer_page(explorer: Explorer, text: str = "") -> str:
    """The explorer's one page: controls for the text, the position and the heads to ablate, and the four views."""
    info = explorer.info()
    boxes = "".join(f'<label><input type="checkbox" class="ablate" value="{h}" id="ablate-{h}">{h}</label> ' for h in info["heads"])
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>circuits explore</title>'
        f"<style>{_STYLE}</style>{head_html()}</head><body>"
        f"<h1>circuits explore</h1><p class=\"cv-note\">{html.escape(info['source'])}: {info['n_layers']} layers of {info['n_heads']} heads, "
        f"context {info['n_ctx']} tokens, vocabulary {info['d_vocab']}.</p>"
        f'<textarea id="text" spellcheck="false">{html.escape(text)}</textarea>'
        '<div class="controls"><label>position (logit lens, attribution; -1 = last) <input id="position" type="number" value="-1" '
        f'style="width:5em"></label><button id="run" type="button">analyse</button> <span id="status"></span></div>'
        f'<div class="controls">ablate (zero): {boxes}</div><div id="error"></div>'
        '<h2>Per-token loss</h2><div id="loss" class="cv-view"></div><h2>Attention of every head</h2><div id="attention" class="cv-view"></div>'
        '<h2>Logit lens</h2><div id="lens" class="cv-view"></div><h2>Direct logit attribution</h2><div id="attribution" class="cv-view"></div>'
        f"<script>{_PAGE_SCRIPT}</script></body></html>"
    )


def _handler(explorer: Explorer, page: str, lock: Lock) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "circuits-explore"

        def log_message(self, format: str, *args) -> None:  # quiet: errors are logged below
            pass

        def send(self, status: int, body: str, kind: str = "application/json") -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def error(self, status: int, message: str) -> None:
            self.send(status, json.dumps({"error": message}))

        def do_GET(self) -> None:
            if self.path in ("/", "/index.html"):
                self.send(200, page, "text/html")
            elif self.path == "/api/info":
                self.send(200, json.dumps(explorer.info()))
            else:
                self.error(404, f"no page {self.path!r}; the explorer serves / and /api/info (GET) and /api/analyze (POST)")

        def do_POST(self) -> None:
            if self.path != "/api/analyze":
                return self.error(404, f"no endpoint {self.path!r}; POST a JSON request to /api/analyze")
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                return self.error(400, "bad Content-Length header")
            if not 0 < length <= MAX_BODY:
                return self.error(413 if length else 400, f"the request body must be 1 to {MAX_BODY} bytes of JSON, got {length}")
            try:
                request = json.loads(self.rfile.read(length).decode("utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                return self.error(400, f"bad request: the body is not UTF-8 JSON ({error}); send {{\"text\": \"...\"}}")
            try:
                with lock:  # one analysis at a time: hooks are attached to the one shared model
                    answer = explorer.analyze(request)
                self.send(200, json.dumps(answer, allow_nan=False))
            except RequestError as error:
                self.error(400, f"bad request: {error}")
            except Exception as error:  # a bug: keep serving, say what failed
                traceback.print_exc(file=sys.stderr)
                self.error(500, f"internal error ({type(error).__name__}: {error}); the server is still running")

    return Handler


def make_server(explorer: Explorer, port: int = 8765, text: str = "") -> ThreadingHTTPServer:
    """A server bound to 127.0.0.1 (loopback only) on ``port`` (0: a free one; see ``server.server_address``), not yet serving."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(explorer, explorer_page(explorer, text), Lock()))
    server.daemon_threads = True
    return server


DEFAULT_TEXT = "def add(a, b):\n    return a + b\n\n\ndef add(a, b):\n    return a + b\n"


def serve(explorer: Explorer, port: int = 8765) -> None:
    """Serve the explorer on http://127.0.0.1:port/ until interrupted (Ctrl-C)."""
    server = make_server(explorer, port, DEFAULT_TEXT)
    host, port = server.server_address[:2]
    print(f"circuits explore: {explorer.source} on http://{host}:{port}/ (loopback only; Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
