"""The chat page of `tessera serve` in headless Chromium: the page loads, a question typed into its input box
and sent with Enter gets a streamed answer, and a screenshot of the result is kept as a test artifact.
Chromium is driven over its DevTools protocol on a pipe (--remote-debugging-pipe: JSON messages ended by
NUL on file descriptors 3 and 4), so nothing beyond Python's standard library is needed.

usage: test_chat_page.py TESSERA_BINARY MODEL.gguf SCREENSHOT.png      exit 77 = no chromium (skipped)
"""
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time


class DevTools:
    """A Chromium process and its DevTools pipe: send() a command, get its result."""

    def __init__(self, chromium, profile):
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()

        def wire_fds():  # the child reads commands on fd 3 and writes answers on fd 4
            r, w = os.dup(to_child_r), os.dup(from_child_w)  # first out of the way of 3 and 4
            os.dup2(r, 3)
            os.dup2(w, 4)

        self.proc = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--mute-audio",
             "--remote-debugging-pipe", f"--user-data-dir={profile}", "--window-size=900,640", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire_fds, pass_fds=(3, 4))  # kept open after wire_fds
        os.close(to_child_r)
        os.close(from_child_w)
        self.next_id = 0
        self.buffer = b""

    def send(self, method, params=None, session=None, timeout=30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self.next_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
            chunk = os.read(self.from_child, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe")
            self.buffer += chunk
        raise TimeoutError(method)

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 - it is going away either way
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.to_child)
        os.close(self.from_child)


def start_server(tessera, model):
    proc = subprocess.Popen([tessera, "serve", "-m", model, "--port", "0", "--threads", "1", "--template", "chatml"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_WAIT_POLICY="passive"))
    lines, ready = [], threading.Event()

    def read():
        for line in proc.stderr:
            lines.append(line)
            if "listening on" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(30):
        proc.kill()
        sys.exit("the server did not start:\n" + "".join(lines))
    return proc, int(re.search(r"127\.0\.0\.1:(\d+)", "".join(lines)).group(1))


def main():
    tessera, model, screenshot = sys.argv[1:4]
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("skipped: no chromium (Debian: apt-get install chromium)")
        return 77
    if not os.path.exists(model):
        print(f"skipped: {model} is absent")
        return 77
    server, port = start_server(tessera, model)
    profile = tempfile.mkdtemp(prefix="tessera-chat-page-")
    browser = DevTools(chromium, profile)
    try:
        target = browser.send("Target.createTarget", {"url": f"http://127.0.0.1:{port}/"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

        def js(expr):
            r = browser.send("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session)
            return r.get("result", {}).get("value")

        def wait_for(expr, seconds, what):
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                value = js(expr)
                if value:
                    return value
                time.sleep(0.1)
            raise AssertionError(f"timed out waiting for {what}")

        # Loaded: the page asked /v1/models and shows the model's name.
        wait_for("document.getElementById('model').textContent === 'stories260K'", 30, "the model name")
        # Typed, as a user would: focus the box, insert the text, press Enter.
        js("document.getElementById('input').focus()")
        browser.send("Input.insertText", {"text": "Tell me a story about a cat"}, session)
        for kind in ("keyDown", "keyUp"):
            browser.send("Input.dispatchKeyEvent", {"type": kind, "key": "Enter", "code": "Enter",
                                                    "windowsVirtualKeyCode": 13, "text": "\r"}, session)
        wait_for("document.querySelector('.msg.user') !== null", 10, "the question to show")
        done = wait_for("(() => { const a = document.querySelector('#log .msg:last-child');"
                        " return a && a.dataset.done ? a.className + '|' + a.textContent : null; })()", 60,
                        "the answer")
        cls, answer = done.split("|", 1)
        question = js("document.querySelector('.msg.user').textContent")
        shot = browser.send("Page.captureScreenshot", {"format": "png"}, session)["data"]
        with open(screenshot, "wb") as f:
            f.write(base64.b64decode(shot))
        print(f"question: {question!r}\nanswer: {answer!r}\nscreenshot: {screenshot}")
        assert question == "Tell me a story about a cat", question
        assert cls == "msg assistant", f"the page shows an error: {answer}"
        assert answer.strip(), "the answer is empty"
        assert os.path.getsize(screenshot) > 1000
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)
        server.terminate()
        server.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
