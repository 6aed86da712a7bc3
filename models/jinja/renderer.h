// Walks a parsed template and writes its output: statements, expressions with Python's operator semantics,
// Jinja2's scoping (a for loop's assignments stay inside it; namespace() objects carry values out), and the
// budget of Limits, checked as it goes.
#pragma once
#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>

#include "models/jinja/ast.h"
#include "models/jinja/builtins.h"
#include "models/jinja/jinja.h"

namespace tessera::jinja {

struct Frame {
    std::unordered_map<std::string, Value> vars;
    std::shared_ptr<Frame> parent;
    const Value* find(const std::string& name) const;
};

class Renderer {
 public:
    explicit Renderer(const Limits& limits);
    std::string render(const Body& body, const Variables& variables);

    // Budget: one unit per statement, loop iteration and call; throws Fault when spent or out of time.
    void step();
    // Throws Fault when a string or list of `size` bytes/items would pass the output bound.
    void check_size(size_t size) const;
    // Calls a function value (builtin, bound method or macro).
    Value call(const Value& fn, CallArgs& args);
    const Limits& limits() const { return limits_; }

 private:
    enum class Flow { Normal, Break, Continue };

    const Limits limits_;
    uint64_t steps_ = 0;
    int call_depth_ = 0;
    std::chrono::steady_clock::time_point start_;
    std::string* out_ = nullptr;

    Flow exec_body(const Body& body, const std::shared_ptr<Frame>& frame);
    Flow exec(const Stmt& s, const std::shared_ptr<Frame>& frame);
    void exec_for(const Stmt& s, const std::shared_ptr<Frame>& frame);
    void exec_set(const Stmt& s, const std::shared_ptr<Frame>& frame);
    void define_macro(const Stmt& s, const std::shared_ptr<Frame>& frame);
    std::string capture(const Body& body, const std::shared_ptr<Frame>& frame);
    void write(const std::string& text);

    Value eval(const Expr& e, const std::shared_ptr<Frame>& frame);
    Value eval_inner(const Expr& e, const std::shared_ptr<Frame>& frame);
    Value eval_filter(const Expr& e, const Value& subject, const std::shared_ptr<Frame>& frame);
    CallArgs eval_args(const Expr& e, size_t first, const std::shared_ptr<Frame>& frame);
    Value binary(const std::string& op, const Value& a, const Value& b);
    bool compare_op(const std::string& op, const Value& a, const Value& b);
};

bool contains(const Value& container, const Value& item);

}  // namespace tessera::jinja
