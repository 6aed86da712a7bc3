#include "tools/line_input.h"

#include <fcntl.h>
#include <histedit.h>
#include <poll.h>
#include <langinfo.h>
#include <locale.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cwchar>
#include <stdexcept>

namespace tessera::cli {

namespace {

// libedit turns keys into wide characters and the line back into bytes with the C library's multibyte
// functions, so it needs a UTF-8 LC_CTYPE for anything beyond ASCII. The program runs in the "C" locale;
// rather than change it for everything, the editor's calls run under a UTF-8 locale of their own
// (uselocale is per thread): the user's when it is UTF-8, else C.UTF-8.
locale_t make_utf8_locale() {
    locale_t loc = newlocale(LC_CTYPE_MASK, "", locale_t(0));
    if (loc && std::strcmp(nl_langinfo_l(CODESET, loc), "UTF-8") == 0) return loc;
    if (loc) freelocale(loc);
    return newlocale(LC_CTYPE_MASK, "C.UTF-8", locale_t(0));  // may be 0: then the "C" locale stays
}

class ScopedLocale {
public:
    explicit ScopedLocale(locale_t loc) : old_(loc ? uselocale(loc) : locale_t(0)) {}
    ~ScopedLocale() {
        if (old_) uselocale(old_);
    }

private:
    locale_t old_;
};

// The first line libedit writes into a history file (H_SAVE), and expects back (H_LOAD).
constexpr char kHistoryMagic[] = "_HiStOrY_V2_";

// Opens (creating with mode 0600) the history file and checks that it is empty or a libedit history, so a
// wrong path (--history-file notes.txt) is refused instead of replaced.
void check_history_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error("history file " + path + ": " + std::strerror(errno));
    struct stat st {};
    const bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    char head[sizeof kHistoryMagic] = {};
    const ssize_t n = regular ? ::read(fd, head, sizeof head - 1) : 0;
    ::close(fd);
    if (!regular) throw std::runtime_error("history file " + path + ": not a regular file");
    if (n > 0 && std::strncmp(head, kHistoryMagic, sizeof kHistoryMagic - 1) != 0)
        throw std::runtime_error("history file " + path +
                                 ": not a tessera chat history (it does not start with " + kHistoryMagic +
                                 "); left as it is");
}

}  // namespace

struct LineInput::Editor {
    EditLine* el = nullptr;
    History* hist = nullptr;
    locale_t utf8 = locale_t(0);
    std::string prompt;
    const LineInput* owner = nullptr;
    bool interrupted = false;  // the last read was cut short by Ctrl-C

    ~Editor() {
        ScopedLocale in_utf8(utf8);
        if (el) el_end(el);  // puts the terminal back as it was
        if (hist) history_end(hist);
        if (utf8) freelocale(utf8);
    }

    static char* prompt_of(EditLine* el) {
        Editor* self = nullptr;
        el_get(el, EL_CLIENTDATA, &self);
        return const_cast<char*>(self->prompt.c_str());
    }

    // libedit's own reader retries a read that a signal interrupted, so Ctrl-C would wait for the next key:
    // this one reports it at once. One character from stdin, UTF-8 decoded; 1 = a character, 0 = end of
    // input, -1 = interrupted or a read error.
    static int read_char(EditLine* el, wchar_t* out) {
        Editor* self = nullptr;
        el_get(el, EL_CLIENTDATA, &self);
        std::mbstate_t state{};
        for (;;) {
            if (!self->owner->wait_for_input()) {
                self->interrupted = true;
                return -1;
            }
            char byte;
            const ssize_t n = ::read(STDIN_FILENO, &byte, 1);
            if (n < 0) return -1;
            if (n == 0) return 0;
            const size_t used = std::mbrtowc(out, &byte, 1, &state);
            if (used == size_t(-2)) continue;  // the middle of a multibyte character
            if (used == size_t(-1)) *out = 0xFFFD;  // not UTF-8: the replacement character stands for it
            return 1;
        }
    }
};

LineInput::LineInput(std::string prompt, const volatile std::sig_atomic_t* interrupted)
    : prompt_(std::move(prompt)), interrupted_(interrupted), terminal_(isatty(STDIN_FILENO) != 0) {
    if (!terminal_ || !isatty(STDERR_FILENO)) return;  // libedit draws on stderr: it must be a terminal too
    auto ed = std::make_unique<Editor>();
    ed->utf8 = make_utf8_locale();
    ed->prompt = prompt_;
    ed->owner = this;
    ScopedLocale in_utf8(ed->utf8);
    ed->el = el_init("tessera", stdin, stderr, stderr);
    ed->hist = history_init();
    if (!ed->el || !ed->hist) return;  // plain reading still works
    HistEvent ev;
    history(ed->hist, &ev, H_SETSIZE, 1000);
    history(ed->hist, &ev, H_SETUNIQUE, 1);  // Up does not step through the same line twice in a row
    el_set(ed->el, EL_CLIENTDATA, ed.get());
    el_set(ed->el, EL_EDITOR, "emacs");
    el_set(ed->el, EL_PROMPT, &Editor::prompt_of);
    el_set(ed->el, EL_HIST, history, ed->hist);
    el_set(ed->el, EL_GETCFN, &Editor::read_char);
    // No libedit signal handlers: chat's own SIGINT handler stays the only one (libedit's re-raises the
    // signal to the whole process group).
    el_set(ed->el, EL_SIGNAL, 0);
    editor_ = std::move(ed);
}

LineInput::~LineInput() = default;

void LineInput::keep_history_in(const std::string& path) {
    check_history_file(path);
    history_file_ = path;
    if (!editor_) return;  // piped input: nothing is recalled or recorded
    ScopedLocale in_utf8(editor_->utf8);
    HistEvent ev;
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && st.st_size > 0 && history(editor_->hist, &ev, H_LOAD, path.c_str()) < 0)
        throw std::runtime_error("history file " + path + ": libedit could not read it");
}

bool LineInput::wait_for_input() const {
    pollfd in{STDIN_FILENO, POLLIN, 0};
    for (;;) {
        if (::ppoll(&in, 1, nullptr, &wait_mask_) >= 0) return true;  // input, end of input or an error:
        if (errno != EINTR) return true;                               // read() tells which
        if (interrupted_ == nullptr || *interrupted_) return false;    // another signal: keep waiting
    }
}

LineInput::Result LineInput::next(std::string* line) {
    // SIGINT stays blocked while a line is read, except inside wait_for_input: a Ctrl-C that comes while
    // the editor is busy waits there instead of landing between two reads and being missed.
    sigset_t sigint, caller_mask;
    sigemptyset(&sigint);
    sigaddset(&sigint, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigint, &caller_mask);
    wait_mask_ = caller_mask;
    sigdelset(&wait_mask_, SIGINT);
    Result r;
    if (interrupted_ && *interrupted_) {
        line->clear();
        r = kInterrupted;  // Ctrl-C came between two lines
    } else {
        r = editor_ ? next_edited(line) : next_plain(line);
    }
    pthread_sigmask(SIG_SETMASK, &caller_mask, nullptr);
    return r;
}

LineInput::Result LineInput::next_edited(std::string* line) {
    line->clear();
    Editor& ed = *editor_;
    ScopedLocale in_utf8(ed.utf8);
    el_resize(ed.el);  // the window may have changed size since the last line (no SIGWINCH handler)
    ed.interrupted = false;
    // The terminal into raw mode now: left to itself libedit prints the prompt first and switches when the
    // first key is read, so a key pressed as the prompt appears met the cooked terminal (its echo doubled
    // the text, and a Ctrl-D there was swallowed as the terminal's own end of file).
    el_set(ed.el, EL_PREP_TERM, 1);
    int count = 0;
    const char* text = el_gets(ed.el, &count);
    if (!text) {
        if (count < 0 && ed.interrupted) return kInterrupted;
        std::fputs("\n", stderr);  // Ctrl-D: the next prompt (chat's or the shell's) starts on its own line
        return kEof;
    }
    line->assign(text);
    while (!line->empty() && (line->back() == '\n' || line->back() == '\r')) line->pop_back();
    if (!line->empty()) {
        HistEvent ev;
        history(ed.hist, &ev, H_ENTER, line->c_str());
        // Saved line by line (at most 1000 lines), written beside the file and renamed over it, so a full
        // disk or a crash mid-write leaves the previous history whole.
        if (!history_file_.empty()) {
            const std::string tmp = history_file_ + ".tmp";
            const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);  // private from
            if (fd >= 0) {                                           // the first byte: H_SAVE keeps the mode
                ::fchmod(fd, 0600);  // a leftover .tmp keeps its old mode through O_TRUNC
                ::close(fd);
            }
            if (fd >= 0 && history(ed.hist, &ev, H_SAVE, tmp.c_str()) >= 0)
                ::rename(tmp.c_str(), history_file_.c_str());
            else
                ::unlink(tmp.c_str());
        }
    }
    return kLine;
}

LineInput::Result LineInput::next_plain(std::string* line) {
    line->clear();
    if (terminal_) std::fputs(prompt_.c_str(), stderr);
    for (;;) {
        const size_t nl = pending_.find('\n');
        if (nl != std::string::npos) {
            line->assign(pending_, 0, nl);
            pending_.erase(0, nl + 1);
            if (!line->empty() && line->back() == '\r') line->pop_back();
            return kLine;
        }
        if (eof_) {
            if (pending_.empty()) {
                if (terminal_) std::fputs("\n", stderr);  // Ctrl-D: the shell's prompt on its own line
                return kEof;
            }
            line->swap(pending_);
            pending_.clear();
            return kLine;
        }
        if (!wait_for_input()) return kInterrupted;
        char buf[4096];
        const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) eof_ = true;
        else pending_.append(buf, size_t(n));
    }
}

}  // namespace tessera::cli
