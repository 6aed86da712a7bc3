#include "models/jinja/parser.h"

#include <cerrno>
#include <cstdlib>

#include "models/jinja/builtins.h"
#include "models/jinja/jinja.h"

namespace tessera::jinja {

namespace {

using K = Token::Kind;

class Parser {
 public:
    Parser(const std::vector<Token>& t, int max_nesting) : t_(t), max_nesting_(max_nesting) {}

    Body run() {
        Body body;
        const std::string end = parse_body(body, {});
        if (!end.empty()) fail_at(cur(), "unexpected '" + end + "'");
        return body;
    }

 private:
    const std::vector<Token>& t_;
    size_t p_ = 0;
    int max_nesting_;
    int depth_ = 0;
    int loop_depth_ = 0;

    struct Depth {
        Parser& p;
        explicit Depth(Parser& parser, const Token& at) : p(parser) {
            if (++p.depth_ > p.max_nesting_) p.fail_at(at, "template nests deeper than the limit");
        }
        ~Depth() { --p.depth_; }
    };

    const Token& cur() const { return t_[p_]; }
    const Token& peek(size_t k = 1) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
    [[noreturn]] void fail_at(const Token& at, const std::string& msg) const { throw TemplateError(msg, at.line, at.col); }
    static std::string describe(const Token& t) {
        switch (t.kind) {
            case K::Eof: return "end of template";
            case K::BlockEnd: return "end of statement block";
            case K::VarEnd: return "end of print statement";
            case K::Text: return "template data";
            case K::String: return "string";
            default: return "'" + t.text + "'";
        }
    }
    bool is_op(const char* op) const { return cur().kind == K::Op && cur().text == op; }
    bool is_name(const char* n) const { return cur().kind == K::Name && cur().text == n; }
    const Token& next() { return t_[p_ < t_.size() - 1 ? p_++ : p_]; }
    void expect_op(const char* op) {
        if (!is_op(op)) fail_at(cur(), std::string("expected '") + op + "', got " + describe(cur()));
        next();
    }
    std::string expect_name() {
        if (cur().kind != K::Name) fail_at(cur(), "expected a name, got " + describe(cur()));
        return next().text;
    }
    void expect_block_end() {
        if (cur().kind != K::BlockEnd) fail_at(cur(), "expected end of statement block, got " + describe(cur()));
        next();
    }

    ExprPtr node(Expr::Kind k, const Token& at) {
        auto e = std::make_unique<Expr>();
        e->kind = k;
        e->line = at.line;
        e->col = at.col;
        return e;
    }
    StmtPtr stmt(Stmt::Kind k, const Token& at) {
        auto s = std::make_unique<Stmt>();
        s->kind = k;
        s->line = at.line;
        s->col = at.col;
        return s;
    }

    // Parses statements until one of `ends` opens a block (returned, with the parser on that name) or the
    // template ends (returns "").
    std::string parse_body(Body& body, std::initializer_list<const char*> ends) {
        while (true) {
            const Token& t = cur();
            if (t.kind == K::Eof) {
                if (ends.size() != 0) fail_at(t, std::string("unexpected end of template; expected '") + *ends.begin() + "'");
                return "";
            }
            if (t.kind == K::Text) {
                auto s = stmt(Stmt::Kind::Text, t);
                s->text = t.text;
                body.push_back(std::move(s));
                next();
            } else if (t.kind == K::VarBegin) {
                next();
                auto s = stmt(Stmt::Kind::Output, t);
                s->expr = parse_tuple(true);
                if (cur().kind != K::VarEnd) fail_at(cur(), "expected end of print statement, got " + describe(cur()));
                next();
                body.push_back(std::move(s));
            } else if (t.kind == K::BlockBegin) {
                const Token& tag = peek();
                if (tag.kind != K::Name) fail_at(tag, "expected a statement name, got " + describe(tag));
                for (const char* e : ends)
                    if (tag.text == e) {
                        next();
                        return e;
                    }
                next();
                body.push_back(statement());
            } else {
                fail_at(t, "unexpected " + describe(t));
            }
        }
    }

    StmtPtr statement() {
        const Token& tag = next();
        Depth d(*this, tag);
        const std::string& n = tag.text;
        if (n == "if") return parse_if(tag);
        if (n == "for") return parse_for(tag);
        if (n == "set") return parse_set(tag);
        if (n == "macro") return parse_macro(tag);
        if (n == "filter") {
            auto s = stmt(Stmt::Kind::FilterBlock, tag);
            s->expr = parse_filter_chain(nullptr);
            expect_block_end();
            parse_body(s->body, {"endfilter"});
            next();
            expect_block_end();
            return s;
        }
        if (n == "break" || n == "continue") {
            if (loop_depth_ == 0) fail_at(tag, "'" + n + "' outside of a loop");
            auto s = stmt(n == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue, tag);
            expect_block_end();
            return s;
        }
        fail_at(tag, "unknown or unexpected tag '" + n + "'");
    }

    StmtPtr parse_if(const Token& tag) {
        auto s = stmt(Stmt::Kind::If, tag);
        s->conds.push_back(parse_tuple(false));
        expect_block_end();
        while (true) {
            s->bodies.emplace_back();
            const std::string end = parse_body(s->bodies.back(), {"elif", "else", "endif"});
            next();
            if (end == "elif") {
                s->conds.push_back(parse_tuple(false));
                expect_block_end();
            } else if (end == "else") {
                expect_block_end();
                parse_body(s->else_body, {"endif"});
                next();
                expect_block_end();
                return s;
            } else {
                expect_block_end();
                return s;
            }
        }
    }

    void parse_targets(std::vector<std::string>& out) {
        const bool paren = is_op("(");
        if (paren) next();
        out.push_back(expect_name());
        while (is_op(",")) {
            next();
            if (cur().kind != K::Name) break;  // a trailing comma
            out.push_back(expect_name());
        }
        if (paren) expect_op(")");
    }

    StmtPtr parse_for(const Token& tag) {
        auto s = stmt(Stmt::Kind::For, tag);
        parse_targets(s->targets);
        if (!is_name("in")) fail_at(cur(), "expected 'in', got " + describe(cur()));
        next();
        s->expr = parse_tuple(false);
        if (is_name("recursive")) fail_at(cur(), "recursive loops are not supported");
        if (is_name("if")) {
            next();
            s->cond = parse_expression(true);
        }
        expect_block_end();
        ++loop_depth_;
        const std::string end = parse_body(s->body, {"endfor", "else"});
        --loop_depth_;
        next();
        expect_block_end();
        if (end == "else") {
            parse_body(s->else_body, {"endfor"});
            next();
            expect_block_end();
        }
        return s;
    }

    StmtPtr parse_set(const Token& tag) {
        auto s = stmt(Stmt::Kind::Set, tag);
        if (cur().kind == K::Name && peek().kind == K::Op && peek().text == ".") {
            s->targets.push_back(next().text);
            next();
            s->target_attr = expect_name();
        } else {
            parse_targets(s->targets);
        }
        if (is_op("=")) {
            next();
            s->expr = parse_tuple(true);
            expect_block_end();
            return s;
        }
        if (!s->target_attr.empty() || s->targets.size() != 1) fail_at(cur(), "expected '='");
        s->kind = Stmt::Kind::SetBlock;
        if (is_op("|")) s->expr = parse_filter_chain(nullptr);
        expect_block_end();
        parse_body(s->body, {"endset"});
        next();
        expect_block_end();
        return s;
    }

    StmtPtr parse_macro(const Token& tag) {
        auto s = stmt(Stmt::Kind::Macro, tag);
        s->name = expect_name();
        expect_op("(");
        while (!is_op(")")) {
            if (!s->params.empty()) expect_op(",");
            if (is_op(")")) break;
            std::string pname = expect_name();
            ExprPtr def;
            if (is_op("=")) {
                next();
                def = parse_expression(true);
            } else if (!s->params.empty() && s->params.back().second) {
                fail_at(cur(), "non-default argument follows default argument");
            }
            s->params.emplace_back(std::move(pname), std::move(def));
        }
        next();
        expect_block_end();
        const int saved = loop_depth_;
        loop_depth_ = 0;  // a loop around the definition does not make break legal inside it
        parse_body(s->body, {"endmacro"});
        loop_depth_ = saved;
        next();
        if (cur().kind == K::Name) next();  // {% endmacro name %}
        expect_block_end();
        return s;
    }

    // ---- expressions ----

    ExprPtr parse_tuple(bool with_condexpr) {
        const Token& at = cur();
        std::vector<ExprPtr> items;
        bool comma = false;
        while (true) {
            if (!items.empty()) {
                if (!is_op(",")) break;
                next();
                comma = true;
                if (cur().kind == K::VarEnd || cur().kind == K::BlockEnd || is_op(")") || is_op("=")) break;
            }
            items.push_back(parse_expression(with_condexpr));
        }
        if (!comma) return std::move(items[0]);
        auto e = node(Expr::Kind::TupleLit, at);
        e->args = std::move(items);
        return e;
    }

    ExprPtr parse_expression(bool with_condexpr) {
        Depth d(*this, cur());
        return with_condexpr ? parse_condexpr() : parse_or();
    }

    ExprPtr parse_condexpr() {
        ExprPtr e = parse_or();
        while (is_name("if")) {
            const Token& at = next();
            auto c = node(Expr::Kind::Cond, at);
            c->args.push_back(parse_or());
            c->args.push_back(std::move(e));
            if (is_name("else")) {
                next();
                c->args.push_back(parse_condexpr());
            } else {
                c->args.push_back(nullptr);
            }
            e = std::move(c);
        }
        return e;
    }

    ExprPtr binary(Expr::Kind k, const Token& at, ExprPtr a, ExprPtr b, std::string op = {}) {
        auto e = node(k, at);
        e->name = std::move(op);
        e->args.push_back(std::move(a));
        e->args.push_back(std::move(b));
        return e;
    }

    ExprPtr parse_or() {
        ExprPtr e = parse_and();
        while (is_name("or")) {
            const Token& at = next();
            e = binary(Expr::Kind::Or, at, std::move(e), parse_and());
        }
        return e;
    }
    ExprPtr parse_and() {
        ExprPtr e = parse_not();
        while (is_name("and")) {
            const Token& at = next();
            e = binary(Expr::Kind::And, at, std::move(e), parse_not());
        }
        return e;
    }
    ExprPtr parse_not() {
        if (is_name("not")) {
            const Token& at = next();
            Depth d(*this, at);
            auto e = node(Expr::Kind::Not, at);
            e->args.push_back(parse_not());
            return e;
        }
        return parse_compare();
    }
    ExprPtr parse_compare() {
        const Token& at = cur();
        ExprPtr first = parse_math1();
        auto e = node(Expr::Kind::Compare, at);
        e->args.push_back(std::move(first));
        while (true) {
            std::string op;
            if (cur().kind == K::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                        cur().text == ">" || cur().text == "<=" || cur().text == ">=")) {
                op = next().text;
            } else if (is_name("in")) {
                next();
                op = "in";
            } else if (is_name("not") && peek().kind == K::Name && peek().text == "in") {
                next();
                next();
                op = "not in";
            } else {
                break;
            }
            e->ops.push_back(op);
            e->args.push_back(parse_math1());
        }
        if (e->ops.empty()) return std::move(e->args[0]);
        return e;
    }
    ExprPtr parse_math1() {
        ExprPtr e = parse_concat();
        while (is_op("+") || is_op("-")) {
            const Token& at = next();
            e = binary(Expr::Kind::Binary, at, std::move(e), parse_concat(), at.text);
        }
        return e;
    }
    ExprPtr parse_concat() {
        ExprPtr e = parse_math2();
        while (is_op("~")) {
            const Token& at = next();
            e = binary(Expr::Kind::Binary, at, std::move(e), parse_math2(), "~");
        }
        return e;
    }
    ExprPtr parse_math2() {
        ExprPtr e = parse_pow();
        while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
            const Token& at = next();
            e = binary(Expr::Kind::Binary, at, std::move(e), parse_pow(), at.text);
        }
        return e;
    }
    ExprPtr parse_pow() {
        ExprPtr e = parse_unary(true);
        while (is_op("**")) {
            const Token& at = next();
            e = binary(Expr::Kind::Binary, at, std::move(e), parse_unary(true), "**");
        }
        return e;
    }
    ExprPtr parse_unary(bool with_filter) {
        const Token& at = cur();
        Depth d(*this, at);
        ExprPtr e;
        if (is_op("-") || is_op("+")) {
            next();
            e = node(at.text == "-" ? Expr::Kind::Neg : Expr::Kind::Pos, at);
            e->args.push_back(parse_unary(false));
        } else {
            e = parse_primary();
        }
        e = parse_postfix(std::move(e));
        if (with_filter) e = parse_filter_expr(std::move(e));
        return e;
    }

    ExprPtr parse_primary() {
        const Token& t = cur();
        if (t.kind == K::Name) {
            next();
            if (t.text == "true" || t.text == "True") return literal(t, Value::boolean(true));
            if (t.text == "false" || t.text == "False") return literal(t, Value::boolean(false));
            if (t.text == "none" || t.text == "None") return literal(t, Value::none());
            auto e = node(Expr::Kind::Name, t);
            e->name = t.text;
            return e;
        }
        if (t.kind == K::String) {
            std::string s;
            while (cur().kind == K::String) s += next().text;  // adjacent literals join, as in Python
            return literal(t, Value::str(std::move(s)));
        }
        if (t.kind == K::Int) {
            next();
            errno = 0;
            const long long v = std::strtoll(t.text.c_str(), nullptr, 10);
            if (errno == ERANGE) fail_at(t, "integer literal " + t.text + " is out of range");
            return literal(t, Value::integer(v));
        }
        if (t.kind == K::Float) {
            next();
            return literal(t, Value::real(std::strtod(t.text.c_str(), nullptr)));
        }
        if (is_op("(")) {
            next();
            if (is_op(")")) {
                next();
                auto e = node(Expr::Kind::TupleLit, t);
                return e;
            }
            ExprPtr e = parse_tuple(true);
            expect_op(")");
            return e;
        }
        if (is_op("[")) {
            next();
            auto e = node(Expr::Kind::ListLit, t);
            while (!is_op("]")) {
                if (!e->args.empty()) {
                    expect_op(",");
                    if (is_op("]")) break;
                }
                e->args.push_back(parse_expression(true));
            }
            next();
            return e;
        }
        if (is_op("{")) {
            next();
            auto e = node(Expr::Kind::DictLit, t);
            while (!is_op("}")) {
                if (!e->args.empty()) {
                    expect_op(",");
                    if (is_op("}")) break;
                }
                e->args.push_back(parse_expression(true));
                expect_op(":");
                e->args.push_back(parse_expression(true));
            }
            next();
            return e;
        }
        fail_at(t, "unexpected " + describe(t));
    }

    ExprPtr literal(const Token& at, Value v) {
        auto e = node(Expr::Kind::Literal, at);
        e->value = std::move(v);
        return e;
    }

    ExprPtr parse_postfix(ExprPtr e) {
        while (true) {
            if (is_op(".")) {
                const Token& at = next();
                if (cur().kind == K::Int) {  // x.0 is x[0]
                    auto it = node(Expr::Kind::Item, at);
                    it->args.push_back(std::move(e));
                    it->args.push_back(literal(cur(), Value::integer(std::strtoll(cur().text.c_str(), nullptr, 10))));
                    next();
                    e = std::move(it);
                    continue;
                }
                auto a = node(Expr::Kind::Attr, at);
                a->name = expect_name();
                a->args.push_back(std::move(e));
                e = std::move(a);
            } else if (is_op("[")) {
                e = parse_subscript(std::move(e));
            } else if (is_op("(")) {
                e = parse_call(std::move(e));
            } else {
                return e;
            }
        }
    }

    ExprPtr parse_subscript(ExprPtr obj) {
        const Token& at = next();  // [
        std::vector<ExprPtr> parts(1);
        bool slice = false;
        while (!is_op("]")) {
            if (is_op(":")) {
                next();
                slice = true;
                parts.emplace_back();
                if (parts.size() > 3) fail_at(cur(), "too many ':' in subscript");
                continue;
            }
            if (parts.back()) fail_at(cur(), "expected ']' or ':', got " + describe(cur()));
            parts.back() = parse_tuple(true);
        }
        next();
        if (!slice) {
            if (!parts[0]) fail_at(at, "empty subscript");
            auto e = node(Expr::Kind::Item, at);
            e->args.push_back(std::move(obj));
            e->args.push_back(std::move(parts[0]));
            return e;
        }
        auto e = node(Expr::Kind::Slice, at);
        e->args.push_back(std::move(obj));
        parts.resize(3);
        for (auto& part : parts) e->args.push_back(std::move(part));
        return e;
    }

    // (args, key=value, ...) appended to e->args / e->kwargs.
    void parse_args(Expr& e) {
        expect_op("(");
        bool first = true;
        while (!is_op(")")) {
            if (!first) {
                expect_op(",");
                if (is_op(")")) break;
            }
            first = false;
            if (cur().kind == K::Name && peek().kind == K::Op && peek().text == "=") {
                std::string key = next().text;
                next();
                e.kwargs.emplace_back(std::move(key), parse_expression(true));
            } else {
                if (!e.kwargs.empty()) fail_at(cur(), "positional argument follows keyword argument");
                e.args.push_back(parse_expression(true));
            }
        }
        next();
    }

    ExprPtr parse_call(ExprPtr callee) {
        auto e = node(Expr::Kind::Call, cur());
        e->args.push_back(std::move(callee));
        parse_args(*e);
        return e;
    }

    ExprPtr parse_filter_chain(ExprPtr subject) {
        ExprPtr e = std::move(subject);
        bool first = true;
        while (first || is_op("|")) {
            if (!first || is_op("|")) next();
            first = false;
            const Token& at = cur();
            auto f = node(Expr::Kind::Filter, at);
            f->name = expect_name();
            if (!is_filter(f->name)) fail_at(at, "no filter named '" + f->name + "'");
            f->args.push_back(std::move(e));
            if (is_op("(")) parse_args(*f);
            e = std::move(f);
        }
        return e;
    }

    ExprPtr parse_filter_expr(ExprPtr e) {
        while (true) {
            if (is_op("|")) {
                e = parse_filter_chain(std::move(e));
            } else if (is_name("is")) {
                next();
                const Token& at = cur();
                auto t = node(Expr::Kind::Test, at);
                if (is_name("not")) {
                    next();
                    t->negated = true;
                }
                const Token& name_at = cur();
                t->name = expect_name();
                if (!is_test(t->name)) fail_at(name_at, "no test named '" + t->name + "'");
                t->args.push_back(std::move(e));
                if (is_op("(")) {
                    parse_args(*t);
                } else if ((cur().kind == K::Name || cur().kind == K::String || cur().kind == K::Int ||
                            cur().kind == K::Float || is_op("[") || is_op("{")) &&
                           !is_name("else") && !is_name("or") && !is_name("and")) {
                    if (is_name("is")) fail_at(cur(), "cannot chain multiple tests with 'is'");
                    t->args.push_back(parse_postfix(parse_primary()));
                }
                e = std::move(t);
            } else if (is_op("(")) {
                e = parse_call(std::move(e));
            } else {
                return e;
            }
        }
    }
};

}  // namespace

Body parse(const std::vector<Token>& tokens, int max_nesting) { return Parser(tokens, max_nesting).run(); }

}  // namespace tessera::jinja
