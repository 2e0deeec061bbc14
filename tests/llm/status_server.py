"""A scripted OpenAI-compatible server for the HTTP engine's retry tests.

usage: status_server.py PORT

Requests under /s/<script>/ answer, one after another, the statuses of <script>, a
comma-separated list such as "429,503,200" (the last one repeats). "429r1" answers 429 with
"Retry-After: 1"; "200d50" answers 200 after 50 ms. A 200 is a valid chat completion. GET /count/<script> returns
{"requests": n, "times": [...]} for that script: what the engine actually sent, and when.
GET .../models answers 200 (the engine asks it for the context length; the test harness
for liveness). Listens on 127.0.0.1 only.
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
seen = {}  # script -> list of arrival times


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        parts = self.path.strip("/").split("/")
        if parts[0] == "count" and len(parts) == 2:
            with lock:
                times = list(seen.get(parts[1], []))
            return self.reply(200, {"requests": len(times), "times": times})
        if parts[-1] == "models":
            return self.reply(200, {"object": "list", "data": [{"id": "scripted"}]})
        self.reply(404, {"error": {"message": "no such path"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        parts = self.path.strip("/").split("/")
        if len(parts) < 2 or parts[0] != "s":
            return self.reply(404, {"error": {"message": "no such path"}})
        script = parts[1]
        steps = script.split(",")
        with lock:
            times = seen.setdefault(script, [])
            step = steps[min(len(times), len(steps) - 1)]
            times.append(time.monotonic())
        step, _, delay_ms = step.partition("d")
        status, _, retry_after = step.partition("r")
        status = int(status)
        if delay_ms:
            time.sleep(int(delay_ms) / 1000)
        if status == 200:
            return self.reply(200, {
                "id": "x", "object": "chat.completion", "model": "scripted",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "ok"}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})
        headers = [("Retry-After", retry_after)] if retry_after else []
        self.reply(status, {"error": {"message": f"scripted status {status}"}}, headers)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.serve_forever()
