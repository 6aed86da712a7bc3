#include "models/jinja/jinja.h"

#include "models/jinja/lexer.h"
#include "models/jinja/parser.h"
#include "models/jinja/renderer.h"

namespace tessera::jinja {

TemplateError::TemplateError(const std::string& msg, int l, int c, bool raised)
    : tessera::Error(format("template line %d column %d: %s", l, c, msg.c_str())),
      message(msg),
      line(l),
      col(c),
      raised_by_template(raised) {}

struct Template::Impl {
    Limits limits;
    Body body;
};

Template::Template() : impl_(std::make_unique<Impl>()) {}
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;
Template::~Template() = default;

Template Template::parse(const std::string& source, const Limits& limits) {
    if (source.size() > limits.max_source_bytes)
        throw TemplateError(format("template is %zu bytes, over the limit of %zu", source.size(), limits.max_source_bytes), 1, 1);
    Template t;
    t.impl_->limits = limits;
    t.impl_->body = jinja::parse(tokenize(source), limits.max_nesting);
    return t;
}

std::string Template::render(const Variables& variables) const {
    Renderer r(impl_->limits);
    return r.render(impl_->body, variables);
}

}  // namespace tessera::jinja
