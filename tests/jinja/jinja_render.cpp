// Renders a batch of templates with tessera's Jinja engine for tests/jinja/differential.py, which renders
// the same batch with Python's Jinja2 and compares. Input (a file named on the command line, JSON):
//   {"templates": ["source", ...], "cases": [{"t": index, "vars": {...}}, ...]}
// Output (stdout, JSON): one entry per case, {"ok": true, "out": text} or
//   {"ok": false, "error": message, "raised": true when the template called raise_exception}.
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

#include "models/jinja/jinja.h"

using namespace tessera::jinja;

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: jinja_render CASES.json\n");
        return 2;
    }
    std::ifstream in(argv[1], std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    try {
        const Value doc = from_json(ss.str());
        const Value* templates = doc.dict->find("templates");
        const Value* cases = doc.dict->find("cases");
        if (!templates || !cases) throw tessera::Error("missing templates or cases");
        std::vector<std::optional<Template>> parsed;
        std::vector<std::string> parse_errors;
        for (const auto& src : templates->list->items) {
            try {
                parsed.emplace_back(Template::parse(src.s));
                parse_errors.emplace_back();
            } catch (const TemplateError& e) {
                parsed.emplace_back();
                parse_errors.emplace_back(e.what());
            }
        }
        std::vector<Value> results;
        for (const auto& c : cases->list->items) {
            const size_t t = size_t(c.dict->find("t")->i);
            auto r = std::make_shared<Dict>();
            if (!parsed.at(t)) {
                r->set("ok", Value::boolean(false));
                r->set("error", Value::str(parse_errors[t]));
                r->set("raised", Value::boolean(false));
            } else {
                Variables vars;
                for (const auto& [k, v] : c.dict->find("vars")->dict->entries) vars.emplace_back(k, v);
                try {
                    r->set("out", Value::str(parsed[t]->render(vars)));
                    r->set("ok", Value::boolean(true));
                } catch (const TemplateError& e) {
                    r->set("ok", Value::boolean(false));
                    r->set("error", Value::str(e.what()));
                    r->set("message", Value::str(e.message));
                    r->set("raised", Value::boolean(e.raised_by_template));
                }
            }
            results.push_back(Value::make_dict(r));
        }
        const std::string out = to_json(Value::make_list(std::move(results)));
        std::fwrite(out.data(), 1, out.size(), stdout);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "jinja_render: %s\n", e.what());
        return 1;
    }
    return 0;
}
