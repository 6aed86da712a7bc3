// The lines a user types into `tessera chat`. On a terminal (stdin and stderr both terminals) they come
// through libedit (BSD licence): the cursor keys, Ctrl-A/E/W/U/K, and this session's history on Up/Down.
// Anywhere else (a pipe, a file) the bytes are read as they are, so piped input is never reinterpreted.
// Both ways tell a line, the end of input (Ctrl-D) and Ctrl-C apart: Ctrl-C is a SIGINT whose handler was
// installed without SA_RESTART, so the blocked read returns EINTR.
#pragma once

#include <memory>
#include <string>

namespace tessera::cli {

class LineInput {
public:
    enum Result { kLine, kEof, kInterrupted };

    // prompt: printed (to stderr) before each line when stdin is a terminal.
    explicit LineInput(std::string prompt);
    ~LineInput();
    LineInput(const LineInput&) = delete;
    LineInput& operator=(const LineInput&) = delete;

    // The next line, without its line ending. On kEof at a terminal the cursor is left on a new line, so
    // the shell's prompt does not start after ours.
    Result next(std::string* line);

    // Whether libedit is in use (stdin and stderr are terminals).
    bool editing() const { return editor_ != nullptr; }

private:
    struct Editor;  // libedit's state: only line_input.cpp includes histedit.h
    Result next_plain(std::string* line);

    std::string prompt_;
    bool terminal_ = false;
    std::unique_ptr<Editor> editor_;
    std::string pending_;  // plain reading: bytes read past the last line
    bool eof_ = false;
};

}  // namespace tessera::cli
