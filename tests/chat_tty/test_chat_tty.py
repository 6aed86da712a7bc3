#!/usr/bin/env python3
"""tessera chat on a pseudo-terminal: what only a terminal user sees.

Line editing and history (libedit): Up recalls the last line, Left moves the cursor into a line (across a
multibyte character too); Ctrl-C at the prompt drops the half-typed line; an unknown /command is not sent to
the model; a real message gets an answer and a new prompt; Ctrl-D ends with the cursor on a new line, exit 0.
Without line editing the tty would hand over the arrow keys' escape bytes as text.
--history-file: a second session recalls the first one's last line with Up; the file is private (0600); a
file that is not a chat history is refused and left as it was.

usage: test_chat_tty.py TESSERA MODEL      (exit 77 = skipped: no model file)
"""
import os
import pty
import stat
import subprocess
import tempfile
import select
import signal
import struct
import sys
import termios
import fcntl
import time

TIMEOUT = 30.0


class Term:
    def __init__(self, argv):
        env = dict(os.environ, TERM="xterm", HOME=os.environ.get("TMPDIR", "/tmp"))
        env.pop("LC_ALL", None)
        env.pop("LANG", None)  # the editor must find a UTF-8 locale on its own (C.UTF-8)
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(argv[0], argv, env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
        self.out = b""
        self.seen = 0  # self.out[:seen] was matched already

    def read_some(self, until):
        r, _, _ = select.select([self.fd], [], [], max(0.0, until - time.time()))
        if not r:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            data = b""
        if not data:
            return None
        self.out += data
        return True

    def expect(self, text):
        """Waits until `text` appears after what was matched before; returns what came before it."""
        want = text.encode()
        until = time.time() + TIMEOUT
        while True:
            i = self.out.find(want, self.seen)
            if i >= 0:
                before = self.out[self.seen:i]
                self.seen = i + len(want)
                return before
            got = self.read_some(until)
            if not got:
                fail(f"waited {TIMEOUT:.0f} s for {text!r}")

    def send(self, keys):
        os.write(self.fd, keys.encode())

    def wait_exit(self):
        until = time.time() + TIMEOUT
        while self.read_some(until):
            pass
        _, status = os.waitpid(self.pid, 0)
        return status


term = None


def fail(why):
    tail = term.out[-1500:].decode(errors="replace") if term else ""
    print(f"FAIL: {why}\n--- terminal output (last 1500 bytes) ---\n{tail}", file=sys.stderr)
    if term:
        try:
            os.kill(term.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    sys.exit(1)


def check_history_file(tessera, model, hist):
    global term
    if not os.path.exists(hist):
        fail("--history-file: no file after the session")
    mode = stat.S_IMODE(os.stat(hist).st_mode)
    if mode != 0o600:
        fail(f"--history-file: mode {mode:o}, not 600")
    # A new session: Up recalls the last line of the previous one ("hello").
    term = Term([tessera, "chat", "-m", model, "--chat-template", "chatml", "--temp", "0", "-n", "4", "-t", "1",
                 "--history-file", hist])
    term.expect("> ")
    term.send("\x1b[A\x01/\r")  # Up, Ctrl-A, "/" before it: "/hello" is an unknown command
    term.expect("unknown command '/hello'")
    term.expect("> ")
    term.send("\x04")
    status = term.wait_exit()
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        fail(f"second session: exit status {status}")
    # Not a history: refused before the model loads, the file untouched.
    notes = os.path.join(os.path.dirname(hist), "notes.txt")
    with open(notes, "w") as f:
        f.write("my notes\n")
    r = subprocess.run([tessera, "chat", "-m", model, "--history-file", notes], input=b"hi\n",
                       capture_output=True, timeout=TIMEOUT)
    if r.returncode != 2 or b"not a tessera chat history" not in r.stderr:
        fail(f"a notes file as --history-file: exit {r.returncode}, stderr {r.stderr[-300:]!r}")
    if open(notes).read() != "my notes\n":
        fail("the notes file given as --history-file was changed")


def main():
    global term
    tessera, model = sys.argv[1], sys.argv[2]
    if not os.path.exists(model):
        print(f"skipped: no {model}")
        return 77
    workdir = tempfile.mkdtemp(prefix="chat_tty.")
    hist = os.path.join(workdir, "history")
    term = Term([tessera, "chat", "-m", model, "--chat-template", "chatml", "--temp", "0", "-n", "4", "-t", "1",
                 "--history-file", hist])
    PROMPT = "> "
    term.expect("type /help")
    term.expect(PROMPT)

    term.send("/abc\r")
    term.expect("unknown command '/abc'")
    term.expect(PROMPT)
    # Up: the last line back, then typed onto.
    term.send("\x1b[Ad\r")
    term.expect("unknown command '/abcd'")
    term.expect(PROMPT)
    # Left twice, then a letter inserted there.
    term.send("/xyz\x1b[D\x1b[DQ\r")
    term.expect("unknown command '/xQyz'")
    term.expect(PROMPT)
    # UTF-8 in and out whole, and Left steps over a two-byte character as one.
    term.send("/ab\u00e9\x1b[Dx\r")
    term.expect("unknown command '/abx\u00e9'")
    term.expect(PROMPT)
    # Ctrl-A to the start of the line: an editing key a plain terminal does not have.
    term.send("bc\x01/a\r")
    term.expect("unknown command '/abc'")
    term.expect(PROMPT)
    # Ctrl-C drops the half-typed line.
    term.send("/zzz")
    term.expect("/zzz")
    term.send("\x03")
    term.expect("(/exit or Ctrl-D quits)")
    term.expect(PROMPT)
    term.send("/q1\r")
    before = term.expect("unknown command '/q1'")
    if b"zzz" in before:
        fail("the line typed before Ctrl-C was kept")
    term.expect(PROMPT)
    # A real message: an answer, then the next prompt.
    term.send("hello\r")
    term.expect(PROMPT)
    # Ctrl-D on an empty line: the cursor ends on a new line, exit 0.
    term.send("\x04")
    status = term.wait_exit()
    tail = term.out[term.seen:]
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        fail(f"exit status {status} after Ctrl-D")
    if b"\n" not in tail:
        fail(f"Ctrl-D left the cursor after the prompt: {tail!r}")
    check_history_file(tessera, model, hist)
    print("chat on a terminal: editing, history, UTF-8, Ctrl-C, answer, Ctrl-D, history file: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
