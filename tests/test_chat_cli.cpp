// `tessera chat` as a user drives it: a line in, an answer streaming out, Ctrl-C (SIGINT) in the middle of
// the answer. The interrupt must stop that answer only: chat says so, keeps reading commands, and exits
// normally afterwards. A random-weight model generates until its context is full (thousands of tokens, no
// end-of-turn), so an answer that is not stopped by the signal shows up as "context full", not as a pass.
#include <doctest/doctest.h>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "tests/testing.h"

using namespace tessera::testing;

namespace {

std::string made_model() {
    return make_small_llama("/tmp/tessera_test_chat_cli_" + std::to_string(::getpid()) + ".gguf", 4096);
}

// A child process with pipes to its stdin, stdout and stderr.
struct Child {
    pid_t pid = -1;
    int in = -1, out = -1, err = -1;
    std::string out_text, err_text;

    void start(const std::string& exe, const std::vector<std::string>& args) {
        int pin[2], pout[2], perr[2];
        REQUIRE(pipe(pin) == 0);
        REQUIRE(pipe(pout) == 0);
        REQUIRE(pipe(perr) == 0);
        pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            dup2(pin[0], 0);
            dup2(pout[1], 1);
            dup2(perr[1], 2);
            for (int fd : {pin[0], pin[1], pout[0], pout[1], perr[0], perr[1]}) close(fd);
            std::vector<char*> argv{const_cast<char*>(exe.c_str())};
            for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
            argv.push_back(nullptr);
            execv(exe.c_str(), argv.data());
            _exit(127);
        }
        close(pin[0]);
        close(pout[1]);
        close(perr[1]);
        in = pin[1];
        out = pout[0];
        err = perr[0];
    }
    void send(const std::string& s) { REQUIRE(write(in, s.data(), s.size()) == ssize_t(s.size())); }
    // Reads what is available for up to `ms`; true once `pred` holds.
    template <class P>
    bool wait_for(P pred, int ms) {
        const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
        while (!pred()) {
            const int left = int(std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count());
            if (left <= 0) return false;
            pollfd fds[2] = {{out, POLLIN, 0}, {err, POLLIN, 0}};
            if (poll(fds, 2, left) <= 0) continue;
            char buf[4096];
            for (int i = 0; i < 2; ++i)
                if (fds[i].revents & (POLLIN | POLLHUP)) {
                    const ssize_t n = read(fds[i].fd, buf, sizeof buf);
                    if (n > 0) (i == 0 ? out_text : err_text).append(buf, size_t(n));
                }
        }
        return true;
    }
    int finish() {
        close(in);
        wait_for([] { return false; }, 200);  // drain
        int status = 0;
        waitpid(pid, &status, 0);
        close(out);
        close(err);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
};

}  // namespace

TEST_CASE("chat: Ctrl-C stops the answer being generated, and chat carries on with the next command") {
    const std::string model = made_model();
    Child c;
    c.start(cli_path(), {"chat", "-m", model, "--template", "chatml", "--temp", "0", "-n", "-1", "-c", "4096",
                         "--threads", "1"});
    c.send("tell me a long story\n");
    // The answer has started streaming: interrupt it.
    REQUIRE_MESSAGE(c.wait_for([&] { return c.out_text.size() >= 40; }, 60000), "no answer started: " << c.err_text);
    REQUIRE(kill(c.pid, SIGINT) == 0);
    const bool stopped = c.wait_for([&] { return c.err_text.find("(stopped)") != std::string::npos; }, 60000);
    INFO("stderr: " << c.err_text);
    CHECK(stopped);
    CHECK(c.err_text.find("context full") == std::string::npos);
    // Still reading commands after the interrupt.
    c.send("/reset\n");
    CHECK(c.wait_for([&] { return c.err_text.find("(conversation reset)") != std::string::npos; }, 30000));
    c.send("/exit\n");
    CHECK(c.finish() == 0);
    std::remove(model.c_str());
}

TEST_CASE("chat: --chat-template-file renders the prompt with that template, --show-prompt prints it") {
    const std::string model = made_model();
    const std::string tmpl = "/tmp/tessera_test_chat_cli_" + std::to_string(::getpid()) + ".jinja";
    FILE* f = std::fopen(tmpl.c_str(), "w");
    REQUIRE(f);
    std::fputs("{% for m in messages %}\n<<{{ m.role|upper }}>>{{ m.content }}\n{% endfor %}\n<<ASSISTANT>>", f);
    std::fclose(f);
    std::string output;
    const int rc = run_command("echo hello | " + cli_path() + " chat -m " + model + " --chat-template-file " + tmpl +
                                   " --show-prompt --system 'Be brief.' -n 1 --temp 0 --threads 1",
                               &output);
    INFO(output);
    CHECK(rc == 0);
    CHECK(output.find("chat format " + tmpl) != std::string::npos);
    CHECK(output.find("--- prompt") != std::string::npos);
    CHECK(output.find("<<SYSTEM>>Be brief.\n<<USER>>hello\n<<ASSISTANT>>\n--- end of prompt ---") != std::string::npos);

    // A template that does not parse is refused, naming the file, line and column.
    f = std::fopen(tmpl.c_str(), "w");
    REQUIRE(f);
    std::fputs("line one\n{% for m in messages %}{{ m.content }", f);
    std::fclose(f);
    const int bad = run_command(cli_path() + " chat -m " + model + " --chat-template-file " + tmpl + " < /dev/null", &output);
    CHECK(bad != 0);
    CHECK(output.find(tmpl) != std::string::npos);
    CHECK(output.find("line 2") != std::string::npos);
    std::remove(tmpl.c_str());
    std::remove(model.c_str());
}
