// The parsed template: expressions and statements, each with the line and column it came from so that a
// runtime error can name them. Built by parser.cpp, walked by renderer.cpp; nothing else depends on it.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "models/jinja/value.h"

namespace tessera::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
    enum class Kind {
        Literal,    // value
        Name,       // name
        ListLit,    // args
        TupleLit,   // args
        DictLit,    // args: key, value, key, value, ...
        Attr,       // args[0].name
        Item,       // args[0][args[1]]
        Slice,      // args[0][args[1]:args[2]:args[3]] (null where absent)
        Call,       // args[0](args[1..], kwargs)
        Filter,     // name(args[0], args[1..], kwargs); args[0] is null inside {% filter %}
        Test,       // args[0] is [not] name(args[1..])   (negated)
        Not,        // not args[0]
        Neg,        // -args[0]
        Pos,        // +args[0]
        Binary,     // args[0] op args[1]: + - * / // % ** ~ in, not in
        Compare,    // args[0] ops[0] args[1] ops[1] args[2] ... (chained like Python)
        And,
        Or,
        Cond,       // args[1] if args[0] else args[2] (args[2] may be null: undefined)
    };
    Kind kind;
    int line = 0, col = 0;
    Value value;
    std::string name;              // Name, Attr, Filter, Test, Binary's operator
    std::vector<std::string> ops;  // Compare's operators
    std::vector<ExprPtr> args;
    std::vector<std::pair<std::string, ExprPtr>> kwargs;
    bool negated = false;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
    enum class Kind {
        Text,         // text
        Output,       // {{ expr }}
        If,           // conds[i] -> bodies[i]; else_body
        For,          // for targets in expr [if cond] body [else else_body]
        Set,          // set targets = expr | set ns.attr = expr (target_attr non-empty)
        SetBlock,     // set targets[0] [| filter] ... endset: expr is a Filter chain with null subject, or null
        Macro,        // macro name(params) body
        FilterBlock,  // filter chain ... endfilter
        Break,
        Continue,
    };
    Kind kind;
    int line = 0, col = 0;
    std::string text;
    ExprPtr expr;
    ExprPtr cond;
    std::vector<ExprPtr> conds;
    std::vector<Body> bodies;
    Body body, else_body;
    std::vector<std::string> targets;
    std::string target_attr;
    std::string name;
    std::vector<std::pair<std::string, ExprPtr>> params;  // macro parameters and their defaults (may be null)
};

}  // namespace tessera::jinja
