#include "models/jinja/renderer.h"

#include <cmath>
#include <limits>

#include "models/jinja/text.h"

namespace tessera::jinja {

const Value* Frame::find(const std::string& name) const {
    for (const Frame* f = this; f; f = f->parent.get()) {
        auto it = f->vars.find(name);
        if (it != f->vars.end()) return &it->second;
    }
    return nullptr;
}

Renderer::Renderer(const Limits& limits) : limits_(limits) {}

void Renderer::step() {
    if (++steps_ > limits_.max_steps)
        throw Fault{format("template ran past its step limit (%llu statements, loop iterations and calls)",
                           (unsigned long long)limits_.max_steps)};
    if ((steps_ & 1023) == 0) {
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        if (s > limits_.max_seconds) throw Fault{format("template ran past its time limit (%.1f s)", limits_.max_seconds)};
    }
}

void Renderer::check_size(size_t size) const {
    if (size > limits_.max_output_bytes)
        throw Fault{format("template output passes its size limit (%zu bytes)", limits_.max_output_bytes)};
}

void Renderer::write(const std::string& text) {
    check_size(out_->size() + text.size());
    *out_ += text;
}

std::string Renderer::render(const Body& body, const Variables& variables) {
    start_ = std::chrono::steady_clock::now();
    auto globals = std::make_shared<Frame>();
    for (auto& [k, v] : global_functions()) globals->vars[k] = v;
    for (const auto& [k, v] : variables) globals->vars[k] = v;
    auto root = std::make_shared<Frame>();
    root->parent = globals;
    std::string out;
    out_ = &out;
    exec_body(body, root);
    return out;
}

std::string Renderer::capture(const Body& body, const std::shared_ptr<Frame>& frame) {
    std::string buf;
    std::string* saved = out_;
    out_ = &buf;
    try {
        exec_body(body, frame);
    } catch (...) {
        out_ = saved;
        throw;
    }
    out_ = saved;
    return buf;
}

Renderer::Flow Renderer::exec_body(const Body& body, const std::shared_ptr<Frame>& frame) {
    for (const auto& s : body) {
        const Flow f = exec(*s, frame);
        if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
}

Renderer::Flow Renderer::exec(const Stmt& s, const std::shared_ptr<Frame>& frame) {
    try {
        step();
        switch (s.kind) {
            case Stmt::Kind::Text: write(s.text); break;
            case Stmt::Kind::Output: write(eval(*s.expr, frame).to_str()); break;
            case Stmt::Kind::If:
                for (size_t k = 0; k < s.conds.size(); ++k)
                    if (eval(*s.conds[k], frame).truthy()) return exec_body(s.bodies[k], frame);
                return exec_body(s.else_body, frame);
            case Stmt::Kind::For: exec_for(s, frame); break;
            case Stmt::Kind::Set:
            case Stmt::Kind::SetBlock: exec_set(s, frame); break;
            case Stmt::Kind::Macro: define_macro(s, frame); break;
            case Stmt::Kind::FilterBlock: {
                const Value body = Value::str(capture(s.body, frame));
                write(eval_filter(*s.expr, body, frame).to_str());
                break;
            }
            case Stmt::Kind::Break: return Flow::Break;
            case Stmt::Kind::Continue: return Flow::Continue;
        }
    } catch (const Fault& f) {
        throw TemplateError(f.message, s.line, s.col, f.raised_by_template);
    }
    return Flow::Normal;
}

namespace {

// Binds `targets` to `item` (unpacking a sequence when there are several).
void assign_targets(Frame& frame, const std::vector<std::string>& targets, const Value& item) {
    if (targets.size() == 1) {
        frame.vars[targets[0]] = item;
        return;
    }
    if (!item.is_list() && !item.is_string())
        throw Fault{std::string("cannot unpack non-iterable ") + item.type_name() + " object"};
    const std::vector<Value> parts = iterate(item);
    if (parts.size() != targets.size())
        throw Fault{format("%s values to unpack (expected %zu, got %zu)",
                           parts.size() > targets.size() ? "too many" : "not enough", targets.size(), parts.size())};
    for (size_t k = 0; k < targets.size(); ++k) frame.vars[targets[k]] = parts[k];
}

}  // namespace

void Renderer::exec_for(const Stmt& s, const std::shared_ptr<Frame>& frame) {
    const Value seq = eval(*s.expr, frame);
    if (!seq.is_list() && !seq.is_dict() && !seq.is_string() && !seq.is_undefined())
        throw Fault{std::string("'") + seq.type_name() + "' object is not iterable"};
    std::vector<Value> items = iterate(seq);
    auto loop_frame = std::make_shared<Frame>();
    loop_frame->parent = frame;
    if (s.cond) {  // `for x in xs if cond`: the loop sees only the items that pass
        std::vector<Value> kept;
        for (auto& item : items) {
            step();
            assign_targets(*loop_frame, s.targets, item);
            if (eval(*s.cond, loop_frame).truthy()) kept.push_back(std::move(item));
        }
        items = std::move(kept);
    }
    const size_t n = items.size();
    for (size_t k = 0; k < n; ++k) {
        step();
        assign_targets(*loop_frame, s.targets, items[k]);
        auto loop = std::make_shared<Dict>();
        loop->entries.reserve(12);
        loop->set("index", Value::integer(int64_t(k + 1)));
        loop->set("index0", Value::integer(int64_t(k)));
        loop->set("revindex", Value::integer(int64_t(n - k)));
        loop->set("revindex0", Value::integer(int64_t(n - k - 1)));
        loop->set("first", Value::boolean(k == 0));
        loop->set("last", Value::boolean(k + 1 == n));
        loop->set("length", Value::integer(int64_t(n)));
        loop->set("depth", Value::integer(1));
        loop->set("depth0", Value::integer(0));
        if (k > 0) loop->set("previtem", items[k - 1]);
        if (k + 1 < n) loop->set("nextitem", items[k + 1]);
        loop->set("cycle", Value::function("loop.cycle", [k](Renderer&, CallArgs& a) {
            if (a.pos.empty()) throw Fault{"no items for cycling given"};
            return a.pos[k % a.pos.size()];
        }));
        loop_frame->vars["loop"] = Value::make_dict(std::move(loop));
        const Flow f = exec_body(s.body, loop_frame);
        if (f == Flow::Break) break;
    }
    if (n == 0) exec_body(s.else_body, frame);
}

void Renderer::exec_set(const Stmt& s, const std::shared_ptr<Frame>& frame) {
    Value v;
    if (s.kind == Stmt::Kind::SetBlock) {
        v = Value::str(capture(s.body, frame));
        if (s.expr) v = eval_filter(*s.expr, v, frame);
    } else {
        v = eval(*s.expr, frame);
    }
    if (!s.target_attr.empty()) {
        const Value* ns = frame->find(s.targets[0]);
        if (!ns || ns->kind != Value::Kind::Namespace)
            throw Fault{"cannot assign attribute on non-namespace object '" + s.targets[0] + "'"};
        ns->dict->set(s.target_attr, std::move(v));
        return;
    }
    assign_targets(*frame, s.targets, v);
}

void Renderer::define_macro(const Stmt& s, const std::shared_ptr<Frame>& frame) {
    const Stmt* def = &s;
    std::weak_ptr<Frame> weak = frame;  // the defining frame outlives every call made while rendering
    Value fn = Value::function(s.name, [this, def, weak](Renderer&, CallArgs& a) -> Value {
        auto parent = weak.lock();
        if (!parent) throw Fault{"macro '" + def->name + "' called after its scope ended"};
        if (a.pos.size() > def->params.size())
            throw Fault{format("macro '%s' takes not more than %zu argument(s)", def->name.c_str(), def->params.size())};
        auto f = std::make_shared<Frame>();
        f->parent = parent;
        for (const auto& [k, v] : a.kw) {
            bool known = false;
            for (const auto& p : def->params) known |= p.first == k;
            if (!known) throw Fault{"macro '" + def->name + "' takes no keyword argument '" + k + "'"};
        }
        for (size_t k = 0; k < def->params.size(); ++k) {
            const auto& [pname, pdef] = def->params[k];
            Value v;
            bool given = false;
            if (k < a.pos.size()) {
                v = a.pos[k];
                given = true;
            }
            for (const auto& [kn, kv] : a.kw)
                if (kn == pname) {
                    if (given) throw Fault{"macro '" + def->name + "' got multiple values for argument '" + pname + "'"};
                    v = kv;
                    given = true;
                }
            if (!given) v = pdef ? eval(*pdef, f) : Value::undefined("'" + pname + "' is undefined");
            f->vars[pname] = std::move(v);
        }
        if (++call_depth_ > limits_.max_nesting) {
            --call_depth_;
            throw Fault{format("macro calls nest deeper than the limit (%d)", limits_.max_nesting)};
        }
        std::string out;
        try {
            out = capture(def->body, f);
        } catch (...) {
            --call_depth_;
            throw;
        }
        --call_depth_;
        return Value::str(std::move(out));
    });
    frame->vars[s.name] = std::move(fn);
}

Value Renderer::call(const Value& fn, CallArgs& args) {
    if (fn.kind != Value::Kind::Callable) {
        if (fn.is_undefined()) throw Fault{fn.s.empty() ? "undefined value is not callable" : fn.s};
        throw Fault{std::string("'") + fn.type_name() + "' object is not callable"};
    }
    step();
    return fn.fn->fn(*this, args);
}

Value Renderer::eval(const Expr& e, const std::shared_ptr<Frame>& frame) {
    try {
        return eval_inner(e, frame);
    } catch (const Fault& f) {
        throw TemplateError(f.message, e.line, e.col, f.raised_by_template);
    }
}

CallArgs Renderer::eval_args(const Expr& e, size_t first, const std::shared_ptr<Frame>& frame) {
    CallArgs a;
    for (size_t k = first; k < e.args.size(); ++k) a.pos.push_back(eval(*e.args[k], frame));
    for (const auto& [name, x] : e.kwargs) a.kw.emplace_back(name, eval(*x, frame));
    return a;
}

Value Renderer::eval_filter(const Expr& e, const Value& subject, const std::shared_ptr<Frame>& frame) {
    // A chain `| a | b` nests: b's subject is the node of a; inside {% filter %} and {% set x | f %} the
    // innermost subject is null and stands for the captured block text.
    const Expr* inner = e.args[0].get();
    const Value in = !inner ? subject
                     : inner->kind == Expr::Kind::Filter ? eval_filter(*inner, subject, frame)
                                                         : eval(*inner, frame);
    CallArgs a = eval_args(e, 1, frame);
    try {
        return apply_filter(*this, e.name, in, a);
    } catch (const Fault& f) {
        throw TemplateError(f.message, e.line, e.col, f.raised_by_template);
    }
}

Value Renderer::eval_inner(const Expr& e, const std::shared_ptr<Frame>& frame) {
    using EK = Expr::Kind;
    switch (e.kind) {
        case EK::Literal: return e.value;
        case EK::Name: {
            const Value* v = frame->find(e.name);
            return v ? *v : Value::undefined("'" + e.name + "' is undefined");
        }
        case EK::ListLit:
        case EK::TupleLit: {
            std::vector<Value> items;
            for (const auto& x : e.args) items.push_back(eval(*x, frame));
            return Value::make_list(std::move(items), e.kind == EK::TupleLit);
        }
        case EK::DictLit: {
            auto d = std::make_shared<Dict>();
            for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
                const Value key = eval(*e.args[k], frame);
                if (!key.is_string()) throw Fault{"only string keys are supported in dict literals"};
                d->set(key.s, eval(*e.args[k + 1], frame));
            }
            return Value::make_dict(std::move(d));
        }
        case EK::Attr: {
            const Value obj = eval(*e.args[0], frame);
            if (obj.is_undefined()) throw Fault{obj.s.empty() ? "undefined value has no attributes" : obj.s};
            return get_attr(obj, e.name);
        }
        case EK::Item: {
            const Value obj = eval(*e.args[0], frame);
            if (obj.is_undefined()) throw Fault{obj.s.empty() ? "undefined value has no items" : obj.s};
            return get_item(obj, eval(*e.args[1], frame));
        }
        case EK::Slice: {
            const Value obj = eval(*e.args[0], frame);
            if (obj.is_undefined()) throw Fault{obj.s.empty() ? "undefined value has no items" : obj.s};
            Value b[3];
            for (int k = 0; k < 3; ++k) b[k] = e.args[size_t(k) + 1] ? eval(*e.args[size_t(k) + 1], frame) : Value::none();
            return get_slice(*this, obj, b[0], b[1], b[2]);
        }
        case EK::Call: {
            const Value fn = eval(*e.args[0], frame);
            CallArgs a = eval_args(e, 1, frame);
            return call(fn, a);
        }
        case EK::Filter: return eval_filter(e, Value(), frame);
        case EK::Test: {
            const Value subject = eval(*e.args[0], frame);
            CallArgs a = eval_args(e, 1, frame);
            return Value::boolean(apply_test(*this, e.name, subject, a) != e.negated);
        }
        case EK::Not: return Value::boolean(!eval(*e.args[0], frame).truthy());
        case EK::Neg:
        case EK::Pos: {
            const Value v = eval(*e.args[0], frame);
            if (!v.is_number()) throw Fault{std::string("bad operand type for unary ") + (e.kind == EK::Neg ? "-" : "+") + ": '" + v.type_name() + "'"};
            if (e.kind == EK::Pos) return v.kind == Value::Kind::Bool ? Value::integer(v.b) : v;
            if (v.kind == Value::Kind::Float) return Value::real(-v.f);
            const int64_t x = v.kind == Value::Kind::Bool ? v.b : v.i;
            if (x == std::numeric_limits<int64_t>::min()) throw Fault{"integer overflow"};
            return Value::integer(-x);
        }
        case EK::Binary: return binary(e.name, eval(*e.args[0], frame), eval(*e.args[1], frame));
        case EK::Compare: {
            Value left = eval(*e.args[0], frame);
            for (size_t k = 0; k < e.ops.size(); ++k) {
                Value right = eval(*e.args[k + 1], frame);
                if (!compare_op(e.ops[k], left, right)) return Value::boolean(false);
                left = std::move(right);
            }
            return Value::boolean(true);
        }
        case EK::And: {
            Value a = eval(*e.args[0], frame);
            return a.truthy() ? eval(*e.args[1], frame) : a;
        }
        case EK::Or: {
            Value a = eval(*e.args[0], frame);
            return a.truthy() ? a : eval(*e.args[1], frame);
        }
        case EK::Cond:
            if (eval(*e.args[0], frame).truthy()) return eval(*e.args[1], frame);
            return e.args[2] ? eval(*e.args[2], frame) : Value::undefined("the inline if-expression evaluated to false and no else section was defined");
    }
    return Value();
}

bool contains(const Value& c, const Value& x) {
    switch (c.kind) {
        case Value::Kind::String:
            if (!x.is_string()) throw Fault{std::string("'in <string>' requires string as left operand, not ") + x.type_name()};
            return c.s.find(x.s) != std::string::npos;
        case Value::Kind::List:
            for (const auto& item : c.list->items)
                if (equal(item, x)) return true;
            return false;
        case Value::Kind::Dict:
        case Value::Kind::Namespace: return x.is_string() && c.dict->find(x.s) != nullptr;
        case Value::Kind::Undefined: return false;
        default: throw Fault{std::string("argument of type '") + c.type_name() + "' is not iterable"};
    }
}

bool Renderer::compare_op(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return equal(a, b);
    if (op == "!=") return !equal(a, b);
    if (op == "in") return contains(b, a);
    if (op == "not in") return !contains(b, a);
    if (a.is_undefined()) throw Fault{a.s};
    if (b.is_undefined()) throw Fault{b.s};
    const int c = [&] {
        try {
            return compare(a, b);
        } catch (Fault& f) {
            f.message.replace(1, 1, op);  // name the operator actually used
            throw;
        }
    }();
    if (op == "<") return c < 0;
    if (op == ">") return c > 0;
    if (op == "<=") return c <= 0;
    return c >= 0;
}

namespace {

bool int_like(const Value& v) { return v.kind == Value::Kind::Int || v.kind == Value::Kind::Bool; }
int64_t int_of(const Value& v) { return v.kind == Value::Kind::Bool ? v.b : v.i; }
double num_of(const Value& v) { return v.kind == Value::Kind::Float ? v.f : double(int_of(v)); }

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
    if (a.is_undefined()) throw Fault{a.s};
    if (b.is_undefined()) throw Fault{b.s};
    throw Fault{"unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'"};
}

double py_fmod(double a, double b) {
    double m = std::fmod(a, b);
    if (m != 0 && ((m < 0) != (b < 0))) m += b;
    return m;
}

}  // namespace

Value Renderer::binary(const std::string& op, const Value& a, const Value& b) {
    if (op == "~") {
        std::string s = a.to_str() + b.to_str();
        check_size(s.size());
        return Value::str(std::move(s));
    }
    const bool ints = int_like(a) && int_like(b);
    const bool nums = a.is_number() && b.is_number();
    const int64_t x = ints ? int_of(a) : 0, y = ints ? int_of(b) : 0;
    int64_t r = 0;
    if (op == "+") {
        if (ints) {
            if (__builtin_add_overflow(x, y, &r)) throw Fault{"integer overflow"};
            return Value::integer(r);
        }
        if (nums) return Value::real(num_of(a) + num_of(b));
        if (a.is_string() && b.is_string()) {
            check_size(a.s.size() + b.s.size());
            if (!a.safe && !b.safe) return Value::str(a.s + b.s);
            // Markup + str escapes the str (markupsafe), and the sum is Markup.
            Value m = Value::str((a.safe ? a.s : text::html_escape(a.s)) + (b.safe ? b.s : text::html_escape(b.s)));
            m.safe = true;
            check_size(m.s.size());
            return m;
        }
        if (a.is_list() && b.is_list() && a.list->tuple == b.list->tuple && !a.is_generator() && !b.is_generator()) {
            check_size(a.list->items.size() + b.list->items.size());
            std::vector<Value> items = a.list->items;
            items.insert(items.end(), b.list->items.begin(), b.list->items.end());
            return Value::make_list(std::move(items), a.list->tuple);
        }
        unsupported(op, a, b);
    }
    if (op == "-") {
        if (ints) {
            if (__builtin_sub_overflow(x, y, &r)) throw Fault{"integer overflow"};
            return Value::integer(r);
        }
        if (nums) return Value::real(num_of(a) - num_of(b));
        unsupported(op, a, b);
    }
    if (op == "*") {
        if (ints) {
            if (__builtin_mul_overflow(x, y, &r)) throw Fault{"integer overflow"};
            return Value::integer(r);
        }
        if (nums) return Value::real(num_of(a) * num_of(b));
        const Value* seq = int_like(a) ? &b : &a;
        const Value* count = int_like(a) ? &a : &b;
        if (int_like(*count) && (seq->is_string() || (seq->is_list() && !seq->is_generator()))) {
            const int64_t n = std::max<int64_t>(0, int_of(*count));
            const size_t unit = seq->is_string() ? seq->s.size() : seq->list->items.size();
            if (unit && uint64_t(n) > limits_.max_output_bytes / unit) check_size(limits_.max_output_bytes + 1);
            if (seq->is_string()) {
                std::string s;
                s.reserve(unit * size_t(n));
                for (int64_t k = 0; k < n; ++k) s += seq->s;
                return Value::str(std::move(s));
            }
            std::vector<Value> items;
            for (int64_t k = 0; k < n; ++k) items.insert(items.end(), seq->list->items.begin(), seq->list->items.end());
            return Value::make_list(std::move(items), seq->list->tuple);
        }
        unsupported(op, a, b);
    }
    if (op == "/") {
        if (!nums) unsupported(op, a, b);
        if (num_of(b) == 0) throw Fault{"division by zero"};
        return Value::real(num_of(a) / num_of(b));
    }
    if (op == "//" || op == "%") {
        if (!nums) {
            if (op == "%" && a.is_string()) throw Fault{"printf-style string formatting (%) is not supported"};
            unsupported(op, a, b);
        }
        if (num_of(b) == 0) throw Fault{op == "%" ? "modulo by zero" : "integer division or modulo by zero"};
        if (ints) {
            if (x == std::numeric_limits<int64_t>::min() && y == -1) throw Fault{"integer overflow"};
            int64_t q = x / y, m = x % y;
            if (m != 0 && ((m < 0) != (y < 0))) {
                --q;
                m += y;
            }
            return Value::integer(op == "//" ? q : m);
        }
        const double fa = num_of(a), fb = num_of(b);
        return Value::real(op == "%" ? py_fmod(fa, fb) : std::round((fa - py_fmod(fa, fb)) / fb));
    }
    if (op == "**") {
        if (!nums) unsupported(op, a, b);
        if (ints && y >= 0) {
            if (x == -1 || x == 0 || x == 1) return Value::integer(x == -1 ? (y % 2 ? -1 : 1) : (y == 0 ? 1 : x));
            int64_t acc = 1;
            for (int64_t k = 0; k < y; ++k) {
                if (__builtin_mul_overflow(acc, x, &acc)) throw Fault{"integer overflow"};
            }
            return Value::integer(acc);
        }
        return Value::real(std::pow(num_of(a), num_of(b)));
    }
    throw Fault{"unknown operator " + op};
}

}  // namespace tessera::jinja
