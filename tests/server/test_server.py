"""`tessera serve` driven by the real `openai` Python client (and by raw HTTP where a client would refuse to
send what we need to send): answers equal `tessera run` / `tessera chat` at temperature 0, token counts,
streaming, concurrent clients, and the faults (bad bodies, wrong types, wrong key, full queue, a client
killed mid-stream, SIGTERM). Every server listens on 127.0.0.1 on a port it picks itself.

usage: test_server.py TESSERA_BINARY MODEL.gguf
"""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import unittest

import openai

TESSERA = MODEL = None
KEY = "test-key"
# The servers use one thread and passive OpenMP waits: the test machine is shared with builds.
ENV = dict(os.environ, OMP_WAIT_POLICY="passive")


class Server:
    """A `tessera serve` process; its port is read from the line it prints when listening."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([TESSERA, "serve", "-m", MODEL, "--port", "0", "--threads", "1", *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
        self.log = []
        listening = threading.Event()

        def read_stderr():
            for line in self.proc.stderr:
                self.log.append(line)
                if "listening on" in line:
                    listening.set()

        self.reader = threading.Thread(target=read_stderr, daemon=True)
        self.reader.start()
        if not listening.wait(30):
            self.proc.kill()
            raise RuntimeError("the server did not start:\n" + "".join(self.log))
        self.port = int(re.search(r"127\.0\.0\.1:(\d+)", "".join(self.log)).group(1))

    def client(self, key=KEY):
        return openai.OpenAI(base_url=f"http://127.0.0.1:{self.port}/v1", api_key=key, max_retries=0, timeout=60)

    def http(self, method, path, body=None, headers=None, key=KEY):
        """One raw request; returns (status, headers, body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = {"Authorization": "Bearer " + key} if key else {}
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, dict(r.getheaders()), data

    def metrics(self):
        status, _, body = self.http("GET", "/metrics")
        assert status == 200, status
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def wait_metric(self, name, pred, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if pred(self.metrics().get(name, 0)):
                return True
            time.sleep(0.02)
        return False

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(5)
        self.proc.stderr.close()
        return self.proc.returncode


def sanitized():
    """True when the binary runs under AddressSanitizer (`make asan`)."""
    out = subprocess.run(["ldd", TESSERA], capture_output=True, text=True)
    return "libasan" in out.stdout


def run_greedy(prompt, n):
    """What `tessera run --temp 0` prints for the prompt (the reference answer)."""
    out = subprocess.run([TESSERA, "run", "-m", MODEL, "-p", prompt, "-n", str(n), "--temp", "0", "--threads", "1"],
                         capture_output=True, text=True, env=ENV, timeout=120, check=True)
    return out.stdout.rstrip("\n")


def chat_greedy(message, n):
    """What `tessera chat --temp 0` answers to one message."""
    out = subprocess.run([TESSERA, "chat", "-m", MODEL, "--template", "chatml", "--temp", "0", "-n", str(n),
                          "--threads", "1"], input=message + "\n", capture_output=True, text=True, env=ENV,
                         timeout=120, check=True)
    return out.stdout.removesuffix("\n")  # chat ends each answer with a newline of its own


def n_tokens(text):
    out = subprocess.run([TESSERA, "tokenize", "-m", MODEL, "-p", text, "--ids"], capture_output=True, text=True,
                         timeout=60, check=True)
    return len(out.stdout.split())


def continuation(text):
    """A completion continues the prompt, so it keeps the space before its first word; `tessera run` prints
    the continuation alone, without it."""
    return text[1:] if text.startswith(" ") else text


def long_stream(server, key=KEY):
    """Starts a streamed completion that runs for seconds (ignore_eos, the whole context); returns the open
    connection and response, or the response when it was refused."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    body = json.dumps({"model": "stories260K", "prompt": "Once upon a time", "stream": True, "ignore_eos": True,
                       "temperature": 0})
    conn.request("POST", "/v1/completions", body=body,
                 headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    return conn


class Main(unittest.TestCase):
    """One server with four slots, a queue and an API key; the requests here are short."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server("--parallel", "4", "--queue", "8", "--ctx", "2048", "--api-key", KEY,
                            "--template", "chatml")
        cls.client = cls.server.client()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_models(self):
        ids = [m.id for m in self.client.models.list().data]
        self.assertEqual(ids, ["stories260K"])

    def test_completion_equals_run(self):
        for prompt in ["Once upon a time", "The cat"]:
            r = self.client.completions.create(model="stories260K", prompt=prompt, max_tokens=24, temperature=0)
            self.assertEqual(continuation(r.choices[0].text), run_greedy(prompt, 24), prompt)
            self.assertEqual(r.choices[0].finish_reason, "length")
            self.assertEqual(r.usage.prompt_tokens, n_tokens(prompt))
            self.assertEqual(r.usage.completion_tokens, 24)
            self.assertEqual(r.usage.total_tokens, r.usage.prompt_tokens + 24)

    def test_completion_stream_equals_whole(self):
        whole = self.client.completions.create(model="stories260K", prompt="One day", max_tokens=30, temperature=0)
        chunks = list(self.client.completions.create(model="stories260K", prompt="One day", max_tokens=30,
                                                     temperature=0, stream=True,
                                                     stream_options={"include_usage": True}))
        text = "".join(c.choices[0].text for c in chunks if c.choices)
        self.assertEqual(text, whole.choices[0].text)
        self.assertGreater(len([c for c in chunks if c.choices]), 5)  # it came in pieces
        self.assertEqual([c.choices[0].finish_reason for c in chunks if c.choices][-1], "length")
        self.assertEqual(chunks[-1].usage.completion_tokens, 30)
        self.assertEqual(chunks[-1].usage.prompt_tokens, whole.usage.prompt_tokens)

    def test_chat_equals_chat_command(self):
        for message in ["Hello there", "Tell me a story"]:
            r = self.client.chat.completions.create(model="stories260K", max_tokens=16, temperature=0,
                                                    messages=[{"role": "user", "content": message}])
            self.assertEqual(r.choices[0].message.role, "assistant")
            self.assertEqual(r.choices[0].message.content, chat_greedy(message, 16), message)
            self.assertEqual(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens)
            self.assertLessEqual(r.usage.completion_tokens, 16)

    def test_chat_stream_equals_whole(self):
        msgs = [{"role": "system", "content": "You tell stories."}, {"role": "user", "content": "A dog"}]
        whole = self.client.chat.completions.create(model="stories260K", messages=msgs, max_tokens=20,
                                                    temperature=0)
        chunks = list(self.client.chat.completions.create(model="stories260K", messages=msgs, max_tokens=20,
                                                          temperature=0, stream=True))
        self.assertEqual(chunks[0].choices[0].delta.role, "assistant")
        self.assertEqual("".join(c.choices[0].delta.content or "" for c in chunks), whole.choices[0].message.content)
        self.assertEqual(chunks[-1].choices[0].finish_reason, whole.choices[0].finish_reason)
        self.assertEqual(len({c.id for c in chunks}), 1)

    def test_stop_string(self):
        full = self.client.completions.create(model="stories260K", prompt="Once upon a time", max_tokens=24,
                                              temperature=0).choices[0].text
        self.assertIn("Lily", full)  # the greedy story names her; the stop string cuts before it
        r = self.client.completions.create(model="stories260K", prompt="Once upon a time", max_tokens=24,
                                           temperature=0, stop=["Lily"])
        self.assertEqual(r.choices[0].text, full[:full.index("Lily")])
        self.assertEqual(r.choices[0].finish_reason, "stop")

    def test_sampling_is_seeded(self):
        a = self.client.completions.create(model="stories260K", prompt="The dog", max_tokens=20, temperature=1.0,
                                           seed=7).choices[0].text
        b = self.client.completions.create(model="stories260K", prompt="The dog", max_tokens=20, temperature=1.0,
                                           seed=7).choices[0].text
        self.assertEqual(a, b)

    def test_concurrent_clients_get_their_own_answers(self):
        # Eight clients at once on four slots: the server batches them (one forward pass serves every busy
        # slot), and each must still get exactly its own greedy continuation, the one `tessera run` gives for
        # its prompt alone. Lengths differ, so slots free at different steps and the queued requests' prompts
        # are read in the same passes as the running ones' next tokens (continuous batching); the metrics
        # show that the passes were shared and mixed, so this is not four requests that merely took turns.
        prompts = ["Once upon a time", "The cat", "Tom and Sue went to the park to play with a big red ball", "One day",
                   "The sun", "A big dog", "Mom said", "The little bird sat on a tree and sang a song to the"]
        lengths = {p: 24 + 5 * i for i, p in enumerate(prompts)}
        expected = {p: run_greedy(p, lengths[p]) for p in prompts}
        before = self.server.metrics()
        got, errors = {}, []
        clients = [self.server.client() for _ in prompts]
        start = threading.Barrier(len(prompts))

        def ask(p, client):
            try:
                start.wait(30)
                text = ""
                for c in client.completions.create(model="stories260K", prompt=p, max_tokens=lengths[p],
                                                   temperature=0, stream=True):
                    text += c.choices[0].text
                got[p] = continuation(text)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(f"{p}: {e!r}")

        threads = [threading.Thread(target=ask, args=(p, c)) for p, c in zip(prompts, clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        for p in prompts:
            self.assertEqual(got.get(p), expected[p], p)
        after = self.server.metrics()
        self.assertGreaterEqual(after["tessera_batch_sequences_max"], 2)
        self.assertGreater(after["tessera_batches_mixed_total"], before["tessera_batches_mixed_total"])
        # Fewer passes than tokens: shared passes, not one request at a time.
        tokens = after["tessera_generated_tokens_total"] - before["tessera_generated_tokens_total"]
        self.assertLess(after["tessera_batches_total"] - before["tessera_batches_total"], tokens)

    def test_bad_requests(self):
        c = self.client
        with self.assertRaises(openai.BadRequestError) as e:
            c.completions.create(model="stories260K", prompt="x", temperature="hot")
        self.assertEqual(e.exception.status_code, 400)
        self.assertIn("temperature", e.exception.message)
        with self.assertRaises(openai.BadRequestError):
            c.completions.create(model="stories260K", prompt="x", max_tokens=-3)
        with self.assertRaises(openai.BadRequestError):
            c.chat.completions.create(model="stories260K", messages=[{"role": "wizard", "content": "hi"}])
        with self.assertRaises(openai.BadRequestError):
            c.chat.completions.create(model="stories260K", messages="hello")
        with self.assertRaises(openai.BadRequestError):
            c.completions.create(model="stories260K", prompt="x", n=3)
        with self.assertRaises(openai.NotFoundError) as e:
            c.completions.create(model="gpt-4o", prompt="x")
        self.assertEqual(e.exception.status_code, 404)
        with self.assertRaises(openai.BadRequestError) as e:
            c.completions.create(model="stories260K", prompt="word " * 3000)
        self.assertIn("2048", e.exception.message)
        with self.assertRaises(openai.AuthenticationError) as e:
            self.server.client(key="wrong").completions.create(model="stories260K", prompt="x")
        self.assertEqual(e.exception.status_code, 401)

    def test_malformed_bodies(self):
        s = self.server
        for body in [b"{", b"[1, 2]", b"\"text\"", b"{\"model\": \"stories260K\", \"prompt\": \"\xff\xfe\"}",
                     b"[" * 100000, b"{\"model\": \"stories260K\", \"prompt\": 5}", b""]:
            status, _, data = s.http("POST", "/v1/completions", body, {"Content-Type": "application/json"})
            self.assertEqual(status, 400, body[:40])
            self.assertIn("message", json.loads(data)["error"])
        status, _, _ = s.http("POST", "/v1/completions", b"{}", key="")
        self.assertEqual(status, 401)
        status, _, data = s.http("GET", "/v1/nothing")
        self.assertEqual((status, json.loads(data)["error"]["type"]), (404, "invalid_request_error"))

    def test_oversized_bodies_are_refused(self):
        s = self.server
        big = b"{\"model\": \"stories260K\", \"prompt\": \"" + b"a" * (2 << 20) + b"\"}"
        status, headers, data = s.http("POST", "/v1/completions", big, {"Content-Type": "application/json"})
        self.assertEqual(status, 413)
        self.assertIn("limit", json.loads(data)["error"]["message"])

        # Chunked: no length declared, so the server counts while it reads and stops at the limit.
        def chunks():
            for _ in range(64):
                yield b"a" * 65536
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        try:
            conn.request("POST", "/v1/completions", body=chunks(), encode_chunked=True,
                         headers={"Authorization": "Bearer " + KEY, "Transfer-Encoding": "chunked"})
            status = conn.getresponse().status
        except (BrokenPipeError, ConnectionResetError):
            status = 413  # it answered and closed while we were still sending; the answer is checked below
        conn.close()
        self.assertEqual(status, 413)
        self.assertEqual(s.http("GET", "/health")[0], 200)

    def test_health_metrics_page(self):
        status, _, data = self.server.http("GET", "/health", key="")
        self.assertEqual((status, json.loads(data)["status"]), (200, "ok"))
        m = self.server.metrics()
        self.assertEqual(m["tessera_slots_total"], 4)
        self.assertIn("tessera_queue_depth", m)
        status, _, _ = self.server.http("GET", "/metrics", key="wrong")
        self.assertEqual(status, 401)
        status, headers, page = self.server.http("GET", "/", key="")
        self.assertEqual(status, 200)
        self.assertIn(b"/v1/chat/completions", page)

    def test_sequential_requests_do_not_grow_memory(self):
        if sanitized():
            self.skipTest("AddressSanitizer keeps freed memory in quarantine: resident size says nothing here")
        # Short prompts keep the 1,000 requests quick; a 32 KiB field the server ignores makes each body big,
        # so keeping anything of a request (its body, its parse) would show as tens of MiB.
        c = self.client
        filler = {"user": "u" * 32768}
        for _ in range(100):
            c.completions.create(model="stories260K", prompt="The dog", max_tokens=4, temperature=0, extra_body=filler)
        before = self.server.rss_kib()
        for _ in range(1000):
            c.completions.create(model="stories260K", prompt="The dog", max_tokens=4, temperature=0, extra_body=filler)
        grown = self.server.rss_kib() - before
        self.assertLess(grown, 4096, f"resident memory grew by {grown} KiB over 1000 requests")


class Tight(unittest.TestCase):
    """One slot and a one-place queue, a long context so a stream can be kept running: a full queue, a
    client killed mid-stream, SIGTERM with a request running."""

    def setUp(self):
        self.server = Server("--parallel", "1", "--queue", "1", "--ctx", "8192", "--api-key", KEY,
                             "--shutdown-timeout", "1")

    def tearDown(self):
        self.server.stop()

    def test_full_queue_gets_503(self):
        s = self.server
        running = long_stream(s)
        r = running.getresponse()
        self.assertEqual(r.status, 200)
        r.readline()  # the first chunk: it is generating
        waiting = long_stream(s)
        self.assertTrue(s.wait_metric("tessera_queue_depth", lambda v: v == 1, 10))
        with self.assertRaises(openai.InternalServerError) as e:
            s.client().completions.create(model="stories260K", prompt="x", max_tokens=2)
        self.assertEqual(e.exception.status_code, 503)
        self.assertEqual(e.exception.response.headers.get("retry-after"), "1")
        running.close()
        waiting.close()
        self.assertTrue(s.wait_metric("tessera_slots_busy", lambda v: v == 0, 5))

    def test_killed_client_frees_its_slot(self):
        s = self.server
        script = ("import openai, sys\n"
                  f"c = openai.OpenAI(base_url='http://127.0.0.1:{s.port}/v1', api_key='{KEY}', max_retries=0)\n"
                  "for chunk in c.completions.create(model='stories260K', prompt='Once upon a time', stream=True,\n"
                  "                                  temperature=0, extra_body={'ignore_eos': True}):\n"
                  "    print('chunk', flush=True)\n")
        client = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        self.assertEqual(client.stdout.readline().strip(), "chunk")
        self.assertEqual(s.metrics()["tessera_slots_busy"], 1)
        client.kill()
        client.wait()
        client.stdout.close()
        t0 = time.monotonic()
        self.assertTrue(s.wait_metric("tessera_slots_busy", lambda v: v == 0, 1.0), "the slot was not freed")
        m = s.metrics()
        self.assertEqual(m["tessera_requests_cancelled_total"], 1)  # freed by the disconnect, not by finishing
        self.assertEqual(m["tessera_requests_finished_total"], 0)
        # The freed slot serves the next request.
        r = s.client().completions.create(model="stories260K", prompt="The cat", max_tokens=8, temperature=0)
        self.assertEqual(continuation(r.choices[0].text), run_greedy("The cat", 8))
        self.assertLess(time.monotonic() - t0, 30)

    def test_sigterm_stops_cleanly(self):
        s = self.server
        conn = long_stream(s)
        r = conn.getresponse()
        r.readline()
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        self.assertEqual(s.proc.wait(20), 0)
        self.assertLess(time.monotonic() - t0, 15)  # 1 s of grace, then the running request is cancelled
        rest = r.read().decode(errors="replace")
        self.assertIn("cancelled", rest)  # the stream says so rather than breaking off silently
        conn.close()


if __name__ == "__main__":
    TESSERA, MODEL = sys.argv[1], sys.argv[2]
    unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[3:], durations=0) if sys.version_info >= (3, 12) else \
        unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[3:])
