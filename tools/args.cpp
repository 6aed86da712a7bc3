#include "tools/args.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/stat.h>
#include <sstream>

namespace tessera::cli {

namespace {

std::vector<std::string> split_names(const std::string& names) {
    std::vector<std::string> out;
    std::stringstream ss(names);
    std::string item;
    while (std::getline(ss, item, ',')) out.push_back(item);
    return out;
}

int64_t parse_int(const std::string& flag, const std::string& v, int64_t lo, int64_t hi) {
    errno = 0;
    char* end = nullptr;
    long long x = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || errno == ERANGE)
        throw UsageError(flag + ": '" + v + "' is not an integer");
    if (x < lo || x > hi)
        throw UsageError(flag + ": " + v + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return x;
}

double parse_float(const std::string& flag, const std::string& v, double lo, double hi) {
    errno = 0;
    char* end = nullptr;
    double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(x))
        throw UsageError(flag + ": '" + v + "' is not a number");
    if (x < lo || x > hi) {
        std::ostringstream os;
        os << flag << ": " << v << " is out of range [" << lo << ", " << hi << "]";
        throw UsageError(os.str());
    }
    return x;
}

}  // namespace

ArgParser::ArgParser(std::string command, std::string synopsis, std::string description)
    : command_(std::move(command)), synopsis_(std::move(synopsis)), description_(std::move(description)) {}

void ArgParser::flag(const std::string& names, bool* out, const std::string& help) {
    specs_.push_back({split_names(names), "", help, false, [out](const std::string&, const std::string&) { *out = true; }});
}

void ArgParser::option(const std::string& names, std::string* out, const std::string& metavar,
                       const std::string& help) {
    specs_.push_back({split_names(names), metavar, help, true,
                      [out](const std::string&, const std::string& v) { *out = v; }});
}

void ArgParser::option(const std::string& names, int* out, const std::string& metavar, const std::string& help,
                       int64_t min, int64_t max) {
    specs_.push_back({split_names(names), metavar, help, true, [=](const std::string& f, const std::string& v) {
                          *out = int(parse_int(f, v, min, max));
                      }});
}

void ArgParser::option(const std::string& names, float* out, const std::string& metavar, const std::string& help,
                       double min, double max) {
    specs_.push_back({split_names(names), metavar, help, true, [=](const std::string& f, const std::string& v) {
                          *out = float(parse_float(f, v, min, max));
                      }});
}

void ArgParser::option(const std::string& names, uint64_t* out, const std::string& metavar,
                       const std::string& help) {
    specs_.push_back({split_names(names), metavar, help, true, [=](const std::string& f, const std::string& v) {
                          errno = 0;
                          char* end = nullptr;
                          unsigned long long x = std::strtoull(v.c_str(), &end, 10);
                          if (v.empty() || v[0] == '-' || *end != '\0' || errno == ERANGE)
                              throw UsageError(f + ": '" + v + "' is not a non-negative integer");
                          *out = x;
                      }});
}

void ArgParser::repeated(const std::string& names, std::vector<std::string>* out, const std::string& metavar,
                         const std::string& help) {
    specs_.push_back({split_names(names), metavar, help + " (may be repeated)", true,
                      [out](const std::string&, const std::string& v) { out->push_back(v); }});
}

void ArgParser::positional(const std::string& metavar, std::string* out, const std::string& help, bool required) {
    positionals_.push_back({metavar, help, out, required});
}

ArgParser::Spec* ArgParser::find(const std::string& name) {
    for (auto& s : specs_)
        for (const auto& n : s.names)
            if (n == name) return &s;
    return nullptr;
}

bool ArgParser::given(const std::string& long_name) const {
    for (const auto& s : specs_)
        for (const auto& n : s.names)
            if (n == long_name) return s.seen;
    return false;
}

bool ArgParser::parse(int argc, char** argv) {
    try {
        return parse_args(argc, argv);
    } catch (const UsageError& e) {
        // The usage line under the problem, so the user sees at once what the command takes.
        throw UsageError(std::string(e.what()) + "\nusage: tessera " + command_ + " " + synopsis_);
    }
}

bool ArgParser::parse_args(int argc, char** argv) {
    size_t next_positional = 0;
    bool only_positionals = false;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (!only_positionals && (arg == "-h" || arg == "--help")) {
            std::fputs(help().c_str(), stdout);
            return false;
        }
        if (!only_positionals && arg == "--") {
            only_positionals = true;
            continue;
        }
        if (!only_positionals && arg.size() > 1 && arg[0] == '-' && !(std::isdigit((unsigned char)arg[1]) || arg[1] == '.')) {
            std::string value;
            bool inline_value = false;
            const size_t eq = arg.find('=');
            if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
                value = arg.substr(eq + 1);
                arg = arg.substr(0, eq);
                inline_value = true;
            }
            // llama.cpp reads '_' in a long option as '-' (--repeat_penalty); so do we.
            if (arg.rfind("--", 0) == 0) std::replace(arg.begin(), arg.end(), '_', '-');
            Spec* s = find(arg);
            if (!s) throw UsageError("unknown option '" + arg + "'");
            if (s->takes_value) {
                if (!inline_value) {
                    if (i + 1 >= argc) throw UsageError(arg + " needs a value (" + s->metavar + ")");
                    value = argv[++i];
                }
            } else if (inline_value) {
                throw UsageError(arg + " takes no value");
            }
            s->set(arg, value);
            s->seen = true;
            continue;
        }
        if (next_positional >= positionals_.size()) throw UsageError("unexpected argument '" + arg + "'");
        *positionals_[next_positional++].out = arg;
    }
    for (size_t p = next_positional; p < positionals_.size(); ++p)
        if (positionals_[p].required) throw UsageError("missing " + positionals_[p].metavar);
    return true;
}

std::string ArgParser::help() const {
    std::ostringstream os;
    os << "usage: tessera " << command_ << " " << synopsis_ << "\n";
    if (!description_.empty()) os << "\n" << description_ << "\n";
    if (!positionals_.empty()) {
        os << "\narguments:\n";
        for (const auto& p : positionals_) os << "  " << p.metavar << std::string(p.metavar.size() < 24 ? 24 - p.metavar.size() : 1, ' ') << p.help << "\n";
    }
    os << "\noptions:\n";
    for (const auto& s : specs_) {
        std::string left;
        for (const auto& n : s.names) left += (left.empty() ? "" : ", ") + n;
        if (s.takes_value) left += " " + s.metavar;
        // A left column too wide for its 24 places puts the help on the next line, in the help column.
        os << "  " << left << (left.size() < 24 ? std::string(24 - left.size(), ' ') : "\n" + std::string(26, ' '))
           << s.help << "\n";
    }
    os << "  -h, --help              show this help\n";
    return os.str();
}

std::string read_text_file(const std::string& flag, const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) throw UsageError(flag + ": cannot read '" + path + "': " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) throw UsageError(flag + ": '" + path + "' is not a regular file");
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw UsageError(flag + ": cannot read '" + path + "': " + std::strerror(errno));
    std::string text;
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    const bool failed = std::ferror(f) != 0;
    std::fclose(f);
    if (failed) throw UsageError(flag + ": reading '" + path + "' failed");
    return text;
}

int run_guarded(const char* command, const std::function<int()>& body) {
    try {
        return body();
    } catch (const UsageError& e) {
        std::fprintf(stderr, "tessera %s: %s\n(see 'tessera %s --help')\n", command, e.what(), command);
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tessera %s: error: %s\n", command, e.what());
        return 1;
    } catch (...) {
        std::fprintf(stderr, "tessera %s: error: an unexpected exception\n", command);
        return 1;
    }
}

}  // namespace tessera::cli
