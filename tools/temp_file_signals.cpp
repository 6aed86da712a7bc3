#include "tools/temp_file_signals.h"

#include <csignal>
#include <initializer_list>

#include "core/temp_files.h"

namespace tessera::cli {

namespace {

extern "C" void remove_temp_files_then_die(int sig) {
    remove_registered_temp_files();
    std::signal(sig, SIG_DFL);
    std::raise(sig);
}

}  // namespace

void remove_temp_files_on_fatal_signals() {
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
        struct sigaction old {};
        sigaction(sig, nullptr, &old);
        if (old.sa_handler == SIG_IGN) continue;
        struct sigaction sa {};
        sa.sa_handler = remove_temp_files_then_die;
        sigemptyset(&sa.sa_mask);
        sigaction(sig, &sa, nullptr);
    }
}

}  // namespace tessera::cli
