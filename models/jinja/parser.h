// Tokens -> statements, with Jinja2's grammar and operator precedence (lowest first: `x if c else y`, or,
// and, not, comparisons and `in`, + -, ~, * / // %, **, unary - +, then filters `|f`, tests `is t`, calls,
// attributes and subscripts). Unknown tags, filters and tests are syntax errors, as Jinja2 reports them when
// it compiles the template.
#pragma once
#include <string>
#include <vector>

#include "models/jinja/ast.h"
#include "models/jinja/lexer.h"

namespace tessera::jinja {

Body parse(const std::vector<Token>& tokens, int max_nesting);

}  // namespace tessera::jinja
