// Splits template source into tokens the way Jinja2's lexer does with Hugging Face's settings
// (trim_blocks and lstrip_blocks on, keep_trailing_newline off): text between tags arrives already trimmed by
// the whitespace rules (`{%-`, `-%}`, `{%+`, `+%}`, a block's first newline, a block tag's indentation), and
// the inside of each tag arrives as names, literals and operators. Line endings are normalized to \n first.
#pragma once
#include <string>
#include <vector>

namespace tessera::jinja {

struct Token {
    enum class Kind { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };
    Kind kind;
    std::string text;  // Text's content, a name, an operator, a string literal's decoded value, a number's digits
    int line = 1, col = 1;
};

// Throws TemplateError (jinja.h) naming the line and column of what it cannot read.
std::vector<Token> tokenize(const std::string& source);

}  // namespace tessera::jinja
