// A small flag parser shared by the sub-commands: long and short names,
// typed values with range checks, --help generated from the declarations.
// Errors name the flag and the bad value.
#pragma once
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace tessera::cli {

struct UsageError : std::runtime_error {
    explicit UsageError(const std::string& what) : std::runtime_error(what) {}
};

class ArgParser {
public:
    ArgParser(std::string command, std::string synopsis, std::string description = "");

    // names: "-m,--model"
    void flag(const std::string& names, bool* out, const std::string& help);
    void option(const std::string& names, std::string* out, const std::string& metavar, const std::string& help);
    void option(const std::string& names, int* out, const std::string& metavar, const std::string& help,
                int64_t min = INT32_MIN, int64_t max = INT32_MAX);
    void option(const std::string& names, float* out, const std::string& metavar, const std::string& help,
                double min = -1e30, double max = 1e30);
    void option(const std::string& names, uint64_t* out, const std::string& metavar, const std::string& help);
    // May be given several times; each value is appended.
    void repeated(const std::string& names, std::vector<std::string>* out, const std::string& metavar,
                  const std::string& help);
    // Positional arguments, in order; `required` ones must be present.
    void positional(const std::string& metavar, std::string* out, const std::string& help, bool required = true);

    // Returns false when --help was given (help already printed to stdout). Throws UsageError, whose message
    // ends with the usage line.
    bool parse(int argc, char** argv);
    std::string help() const;
    bool given(const std::string& long_name) const;  // was this flag on the command line?

private:
    struct Spec {
        std::vector<std::string> names;
        std::string metavar, help;
        bool takes_value;
        std::function<void(const std::string& flag, const std::string& value)> set;
        bool seen = false;
    };
    struct Positional {
        std::string metavar, help;
        std::string* out;
        bool required;
    };
    Spec* find(const std::string& name);
    bool parse_args(int argc, char** argv);
    std::string command_, synopsis_, description_;
    std::vector<Spec> specs_;
    std::vector<Positional> positionals_;
};

// The whole of a text file given with `flag` (-f FILE); throws UsageError naming the flag, the file and the
// system's reason, and refuses what is not a regular file (a directory reads as nothing).
std::string read_text_file(const std::string& flag, const std::string& path);

// Runs a command body, turning UsageError into "tessera CMD: msg" + a hint (exit 2)
// and tessera::Error / std::exception into "tessera CMD: error: msg" (exit 1).
int run_guarded(const char* command, const std::function<int()>& body);

}  // namespace tessera::cli
