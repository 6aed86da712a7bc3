// Busy neighbours for benchmarks: child processes that each keep one core busy (a spin loop that touches
// no memory) until they are destroyed. `tessera bench -m M --neighbour N` measures with them running, the
// case of a machine shared with another program (a build, a second model); tests never use them.
#pragma once
#include <csignal>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__linux__)
#include <sys/prctl.h>
#endif
#include <sys/wait.h>
#include <unistd.h>

namespace tessera::cli {

class BusyNeighbours {
public:
    explicit BusyNeighbours(int count) {
        const pid_t parent = getpid();
        for (int i = 0; i < count; ++i) {
            const pid_t pid = fork();
            if (pid < 0) {
                stop();
                throw std::runtime_error("--neighbour: fork failed");
            }
            if (pid == 0) {
                // The child: dies with the parent (even a killed one), calls nothing that could take a lock
                // another thread held at the fork, and spins.
#if defined(__linux__)
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent) _exit(0);
                volatile unsigned long spin = 0;
                for (;;) spin = spin + 1;
#else
                // No death signal elsewhere (macOS): the child looks for its parent now and then instead.
                for (volatile unsigned long spin = 0;; spin = spin + 1)
                    if ((spin & 0xffffff) == 0 && getppid() != parent) _exit(0);
#endif
            }
            pids_.push_back(pid);
        }
    }
    ~BusyNeighbours() { stop(); }
    BusyNeighbours(const BusyNeighbours&) = delete;
    BusyNeighbours& operator=(const BusyNeighbours&) = delete;

private:
    void stop() {
        for (pid_t pid : pids_) kill(pid, SIGKILL);
        for (pid_t pid : pids_) waitpid(pid, nullptr, 0);
        pids_.clear();
    }
    std::vector<pid_t> pids_;
};

}  // namespace tessera::cli
