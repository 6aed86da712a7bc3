#include "tools/line_input.h"

#include <histedit.h>
#include <langinfo.h>
#include <locale.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cwchar>

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

}  // namespace

struct LineInput::Editor {
    EditLine* el = nullptr;
    History* hist = nullptr;
    locale_t utf8 = locale_t(0);
    std::string prompt;
    bool interrupted = false;  // the last read ended in EINTR (Ctrl-C)

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
            char byte;
            const ssize_t n = ::read(STDIN_FILENO, &byte, 1);
            if (n < 0 && errno == EINTR) {
                self->interrupted = true;
                return -1;
            }
            if (n < 0) return -1;
            if (n == 0) return 0;
            const size_t used = std::mbrtowc(out, &byte, 1, &state);
            if (used == size_t(-2)) continue;  // the middle of a multibyte character
            if (used == size_t(-1)) *out = 0xFFFD;  // not UTF-8: the replacement character stands for it
            return 1;
        }
    }
};

LineInput::LineInput(std::string prompt) : prompt_(std::move(prompt)), terminal_(isatty(STDIN_FILENO) != 0) {
    if (!terminal_ || !isatty(STDERR_FILENO)) return;  // libedit draws on stderr: it must be a terminal too
    auto ed = std::make_unique<Editor>();
    ed->utf8 = make_utf8_locale();
    ed->prompt = prompt_;
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

LineInput::Result LineInput::next(std::string* line) {
    if (!editor_) return next_plain(line);
    line->clear();
    Editor& ed = *editor_;
    ScopedLocale in_utf8(ed.utf8);
    el_resize(ed.el);  // the window may have changed size since the last line (no SIGWINCH handler)
    ed.interrupted = false;
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
        char buf[4096];
        const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
        if (n < 0 && errno == EINTR) return kInterrupted;
        if (n <= 0) eof_ = true;
        else pending_.append(buf, size_t(n));
    }
}

}  // namespace tessera::cli
