"""Drives the README's "From a Python backend" example (the module at argv[1], the block cut out
of README.md) against a real `tokenctl serve` (TOKENCTL_URL, TOKENCTL_TOKEN), through each path
a backend meets, and prints one JSON document of what happened for tests/serve_clients.rs:

  ok          a request that runs: reserved, called, settled
  failed      the LLM call raises: the error reaches the caller, the hold is released
  too_large   a request over the per-request limit: 403, BudgetDenied without retry_after,
              the LLM never called
  rate        a second request of an AI type limited to 1 a minute: 429, BudgetDenied with
              retry_after (max_wait 0: no waiting in a test)
  unreachable tokenctl not listening: BudgetUnavailable, the LLM never called
  down        tokenctl answering 503 with Retry-After (its database is down; a stand-in server
              here): BudgetUnavailable, the LLM never called
"""

import http.server
import importlib.util
import json
import os
import sys
import threading

import httpx

spec = importlib.util.spec_from_file_location("readme_client", sys.argv[1])
client = importlib.util.module_from_spec(spec)
spec.loader.exec_module(client)

real_call_llm = client.call_llm
llm_calls = []


def counted_call_llm(prompt, max_tokens):
    answer = real_call_llm(prompt, max_tokens)
    llm_calls.append(answer)
    return answer


def failing_call_llm(prompt, max_tokens):
    llm_calls.append(None)
    raise RuntimeError("overloaded_error: 529")


out = {}
client.call_llm = counted_call_llm

# ok: twice, so that the month's numbers add up over more than one request
texts = [client.ask("imperium", "Summarise the quarterly report in three lines.", max_tokens=200),
         client.ask("imperium", "Say hello.", max_tokens=50)]
out["ok"] = {"texts": texts, "used": [dict(a) for a in llm_calls]}

# failed: the LLM raises; ask must raise that same error and release the hold
client.call_llm = failing_call_llm
try:
    client.ask("imperium", "This one fails.", max_tokens=300)
    out["failed"] = {"raised": None}
except RuntimeError as e:
    out["failed"] = {"raised": str(e)}
client.call_llm = counted_call_llm

# too_large: 2,000 tokens asked of a 1,000-token per-request limit
calls_before = len(llm_calls)
try:
    client.ask("imperium", "Write a novel.", max_tokens=2000)
    out["too_large"] = {"denied": False}
except client.BudgetDenied as e:
    out["too_large"] = {"denied": True, "reason": e.reason, "retry_after": e.retry_after,
                        "llm_called": len(llm_calls) > calls_before}

# rate: the AI type "paced" may make one request a minute (set by the test)
client.ask("paced", "The first of the minute.", max_tokens=100)
calls_before = len(llm_calls)
real_reserve = client.reserve
client.reserve = lambda a, p, m, max_wait=30.0: real_reserve(a, p, m, max_wait=0)
try:
    client.ask("paced", "The second of the minute.", max_tokens=100)
    out["rate"] = {"denied": False}
except client.BudgetDenied as e:
    out["rate"] = {"denied": True, "reason": e.reason, "retry_after": e.retry_after,
                   "llm_called": len(llm_calls) > calls_before}
client.reserve = real_reserve

# unreachable: the same client pointed at a port nothing listens on
calls_before = len(llm_calls)
client.tokenctl = httpx.Client(base_url=os.environ["TOKENCTL_DEAD_URL"],
                               headers=client.tokenctl.headers, timeout=5.0)
try:
    client.ask("imperium", "Nobody is there.", max_tokens=100)
    out["unreachable"] = {"failed_closed": False}
except client.BudgetUnavailable:
    out["unreachable"] = {"failed_closed": True, "llm_called": len(llm_calls) > calls_before}

# down: what serve answers without its database, from a stand-in on a free loopback port
class Down(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"error": "the database cannot be reached", "code": "unavailable"}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Retry-After", "2")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


down = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Down)
threading.Thread(target=down.serve_forever, daemon=True).start()
calls_before = len(llm_calls)
client.tokenctl = httpx.Client(base_url=f"http://127.0.0.1:{down.server_address[1]}",
                               headers=client.tokenctl.headers, timeout=5.0)
try:
    client.ask("imperium", "The database is down.", max_tokens=100)
    out["down"] = {"failed_closed": False}
except client.BudgetUnavailable as e:
    out["down"] = {"failed_closed": True, "llm_called": len(llm_calls) > calls_before,
                   "says": str(e)}
down.shutdown()

out["settled"] = [a for a in llm_calls if a is not None]
print(json.dumps(out))
