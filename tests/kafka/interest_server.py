"""An OpenAI-compatible server that answers every chat completion with an interest summary
derived from the prompt, and counts the calls by prompt: the Kafka chaos test's LLM fleet.

usage: interest_server.py PORT [DELAY_S]   (DELAY_S: seconds before each answer, default 0)

The answer is a function of the prompt, so the cascade is deterministic: a partition learned
twice (by two workers, or again after a crash) sends the same prompt twice. GET /calls returns
{"calls": n, "prompts": {sha256 of the messages: times sent}}. Listens on 127.0.0.1 only.
"""
import hashlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
prompts = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.rstrip("/") == "/calls":
            with lock:
                return self.reply(200, {"calls": sum(prompts.values()), "prompts": dict(prompts)})
        if self.path.rstrip("/").endswith("/models"):
            return self.reply(200, {"object": "list", "data": [{"id": "interests"}]})
        self.reply(404, {"error": {"message": "no such path"}})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self.reply(404, {"error": {"message": "no such path"}})
        text = json.dumps(body.get("messages", []), sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()
        with lock:
            prompts[digest] = prompts.get(digest, 0) + 1
        time.sleep(DELAY_S)
        content = json.dumps({"summary": f"Prefers the films of profile {digest[:12]}, mostly recent ones.",
                              "shift": f"Moved towards profile {digest[12:20]}."})
        self.reply(200, {
            "id": digest[:16], "object": "chat.completion", "model": "interests",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": len(text) // 4, "completion_tokens": 30, "total_tokens": len(text) // 4 + 30}})


DELAY_S = 0.0

if __name__ == "__main__":
    DELAY_S = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
