#!/usr/bin/env python3
"""Differential test: tessera's Jinja engine against Python's Jinja2, set up as Hugging Face's transformers
sets it up for chat templates (sandboxed, trim_blocks, lstrip_blocks, loop controls, raise_exception,
strftime_now, a tojson that keeps non-ASCII). Every template in ../shared/chat_templates and in llama.cpp's
chat-template suite renders many generated conversations with both; each result must be byte-identical, or
both must fail (and a raise_exception() message must be the same).

usage: differential.py JINJA_RENDER_BINARY SHARED_CHAT_TEMPLATES_DIR SUITE_JSON
"""
import datetime
import json
import os
import random
import subprocess
import sys
import tempfile

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class RaisedByTemplate(jinja2.exceptions.TemplateError):
    pass


def raise_exception(message):
    raise RaisedByTemplate(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    return datetime.datetime.now().strftime(fmt)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


CONTENTS = [
    "Hello",
    "What is 2 + 2?",
    "",
    "line one\nline two\n\nline four",
    "   padded with spaces   ",
    "\n\nleading and trailing newlines\n\n",
    "日本語のテキストです。🙂 emoji and ünïcödé – “quotes”",
    "It's \"quoted\" and has a \\backslash\\ and a\ttab",
    "{{ not a tag }} {% neither %} {# nor #}",
    "<think>\nreasoning first\n</think>\n\nthen the answer",
    "</s><|im_end|><|eot_id|> markers inside text",
    "a" * 300,
]
SYSTEMS = [
    "You are a helpful assistant.",
    "Multi-line system prompt.\nSecond line.\n",
    "Système: répondez en français. 答えは日本語で。",
    "",
]
TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}]


def conversations(rng):
    """(messages, add_generation_prompt, tools or None) triples covering the shapes chat prompts take."""
    out = []
    for n_turns in [1, 2, 3, 5, 8]:
        for with_system in [False, True]:
            for assistant_last in [False, True]:
                for gen in [True, False]:
                    msgs = []
                    if with_system:
                        msgs.append({"role": "system", "content": rng.choice(SYSTEMS)})
                    for k in range(n_turns):
                        msgs.append({"role": "user", "content": rng.choice(CONTENTS)})
                        if k + 1 < n_turns or assistant_last:
                            msgs.append({"role": "assistant", "content": rng.choice(CONTENTS)})
                    out.append((msgs, gen, None))
    out.append(([], True, None))
    out.append(([{"role": "user", "content": ""}], True, None))
    # tool use: a call, its result, the answer
    call = {"id": "call12345", "type": "function",
            "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}
    for content in ["", None]:
        msgs = [
            {"role": "system", "content": "You can call tools."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": content, "tool_calls": [call]},
            {"role": "tool", "content": "{\"temperature\": 21}", "tool_call_id": "call12345", "name": "get_weather"},
            {"role": "assistant", "content": "It is 21 °C in Paris."},
            {"role": "user", "content": "Thanks"},
        ]
        out.append((msgs, True, TOOLS))
    out.append(([{"role": "user", "content": "Weather?"}], True, TOOLS))
    return out


def main():
    binary, templates_dir, suite_path = sys.argv[1:4]
    rng = random.Random(20)
    env = environment()
    templates = []  # (name, source)
    for name in sorted(os.listdir(templates_dir)):
        if name.endswith(".jinja"):
            with open(os.path.join(templates_dir, name), encoding="utf-8") as f:
                templates.append((name, f.read()))
    n_shared = len(templates)
    with open(suite_path, encoding="utf-8") as f:
        for case in json.load(f)["cases"]:
            templates.append(("llama.cpp suite: " + case["name"], case["template"]))

    convs = conversations(rng)
    cases, expected = [], []
    for t, (name, source) in enumerate(templates):
        try:
            compiled = env.from_string(source)
            parse_error = None
        except jinja2.exceptions.TemplateError as e:
            compiled, parse_error = None, e
        for msgs, gen, tools in convs:
            variables = {"messages": msgs, "add_generation_prompt": gen, "bos_token": "<s>", "eos_token": "</s>"}
            if tools is not None:
                variables["tools"] = tools
            cases.append({"t": t, "vars": variables})
            if compiled is None:
                expected.append(("error", str(parse_error), False))
                continue
            try:
                expected.append(("ok", compiled.render(**variables), False))
            except RaisedByTemplate as e:
                expected.append(("error", str(e), True))
            except Exception as e:  # noqa: BLE001 - any Jinja2 failure is an expected failure for us too
                expected.append(("error", f"{type(e).__name__}: {e}", False))

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump({"templates": [s for _, s in templates], "cases": cases}, f, ensure_ascii=False)
        batch = f.name
    try:
        proc = subprocess.run([binary, batch], capture_output=True, timeout=120)
    finally:
        os.unlink(batch)
    if proc.returncode != 0:
        print(proc.stderr.decode(errors="replace"))
        return 1
    results = json.loads(proc.stdout.decode("utf-8"))

    per_template = {}
    failures = []
    for case, want, got in zip(cases, expected, results):
        name = templates[case["t"]][0]
        kind, text, raised = want
        if kind == "ok":
            ok = got["ok"] and got["out"] == text
        else:
            ok = not got["ok"] and (not raised or (got.get("raised") and got.get("message") == text))
        agg = per_template.setdefault(name, [0, 0, 0])
        agg[0] += ok
        agg[1] += 1
        agg[2] += kind == "ok"
        if not ok:
            failures.append((name, case, want, got))

    identical = [n for n, (good, total, _) in per_template.items() if good == total]
    shared_ok = sum(1 for n, _ in templates[:n_shared] if n in identical)
    suite_ok = sum(1 for n, _ in templates[n_shared:] if n in identical)
    print(f"{len(cases)} renders; templates agreeing on every conversation: {shared_ok}/{n_shared} in "
          f"chat_templates, {suite_ok}/{len(templates) - n_shared} in llama.cpp's suite")
    for name, (good, total, rendered) in sorted(per_template.items()):
        if good != total:
            print(f"  DIFFERS {name}: {good}/{total} agree ({rendered} rendered by Jinja2)")
    shown = set()
    for name, case, want, got in failures:
        if name in shown:
            continue
        shown.add(name)
        print(f"--- {name}: first difference")
        print("  Jinja2 :", repr(want[1])[:1500])
        print("  tessera:", repr(got.get("out") if got["ok"] else got.get("error"))[:1500])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
