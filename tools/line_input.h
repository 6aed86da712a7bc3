// The lines a user types into `tessera chat`. On a terminal (stdin and stderr both terminals) they come
// through libedit (BSD licence): the cursor keys, Ctrl-A/E/W/U/K, and the history on Up/Down (this
// session's lines, and earlier sessions' when a history file is kept).
// Anywhere else (a pipe, a file) the bytes are read as they are, so piped input is never reinterpreted.
// Both ways tell a line, the end of input (Ctrl-D) and Ctrl-C apart. Ctrl-C is a SIGINT (the caller's
// handler sets a flag): SIGINT is blocked while a line is read and let through only inside the wait for
// input (ppoll), so a Ctrl-C pressed while the editor redraws is not lost between two reads.
#pragma once

#include <signal.h>

#include <csignal>
#include <memory>
#include <string>

namespace tessera::cli {

class LineInput {
public:
    enum Result { kLine, kEof, kInterrupted };

    // prompt: printed (to stderr) before each line when stdin is a terminal. interrupted: the flag the
    // caller's SIGINT handler sets; when it is already set as a line is asked for, next() says kInterrupted
    // (the caller clears it).
    explicit LineInput(std::string prompt, const volatile std::sig_atomic_t* interrupted = nullptr);
    ~LineInput();
    LineInput(const LineInput&) = delete;
    LineInput& operator=(const LineInput&) = delete;

    // The next line, without its line ending. On kEof at a terminal the cursor is left on a new line, so
    // the shell's prompt does not start after ours.
    Result next(std::string* line);

    // Keeps the history in `path` across sessions: its lines are loaded now (on a terminal) and every line
    // entered is saved at once, so a crash loses nothing. Throws std::runtime_error naming the problem when
    // the file cannot be created or read, or holds something other than a libedit history (it is then left
    // untouched rather than overwritten). Created with mode 0600: chats can hold private text.
    void keep_history_in(const std::string& path);

    // Whether libedit is in use (stdin and stderr are terminals).
    bool editing() const { return editor_ != nullptr; }

private:
    struct Editor;  // libedit's state: only line_input.cpp includes histedit.h
    Result next_plain(std::string* line);
    Result next_edited(std::string* line);
    // Waits until stdin has input, with SIGINT let through for the wait only; false: a SIGINT came.
    bool wait_for_input() const;

    std::string prompt_;
    const volatile std::sig_atomic_t* interrupted_ = nullptr;
    sigset_t wait_mask_{};  // the signal mask inside wait_for_input: the caller's, SIGINT unblocked
    bool terminal_ = false;
    std::unique_ptr<Editor> editor_;
    std::string history_file_;  // empty: this session's history only
    std::string pending_;  // plain reading: bytes read past the last line
    bool eof_ = false;
};

}  // namespace tessera::cli
