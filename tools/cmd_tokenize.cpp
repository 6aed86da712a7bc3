// `tessera tokenize -m MODEL [-p TEXT | -f FILE] [--no-bos] [--parse-special] [--ids]`: shows how a model's
// vocabulary splits text. Opens the file vocab-only (tessera_vocab_open reads only its metadata), so
// vocab-only GGUF files work too.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "tools/args.h"
#include "tools/command.h"
#include "tools/session_flags.h"

namespace tessera::cli {

namespace {

// A piece as printable text: valid UTF-8 is shown as is, other bytes (a part of a character) as \xNN.
std::string show_piece(const std::string& piece) {
    std::string out;
    for (size_t i = 0; i < piece.size();) {
        const size_t len = tessera_utf8_char_len(piece.data() + i, piece.size() - i);
        if (len > 0 && uint8_t(piece[i]) >= 0x20 && piece[i] != 0x7F) {
            out.append(piece, i, len);
            i += len;
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02X", unsigned(uint8_t(piece[i])));
            out += buf;
            i += 1;
        }
    }
    return out;
}

int tokenize(int argc, char** argv) {
    std::string model, prompt, file;
    bool no_bos = false, parse_special = false, ids_only = false;
    ArgParser p("tokenize", "-m MODEL (-p TEXT | -f FILE) [options]",
                "Prints the tokens of TEXT: one \"id<TAB>'piece'\" line per token, or with --ids the ids on one line.");
    p.option("-m,--model", &model, "FILE", "GGUF file with a vocabulary (vocab-only files work)");
    p.option("-p,--prompt", &prompt, "TEXT", "text to tokenize");
    p.option("-f,--file", &file, "FILE", "read the text from FILE");
    p.flag("--no-bos", &no_bos, "add no special tokens (no BOS, no EOS)");
    p.flag("--parse-special", &parse_special, "recognize special token texts such as <|eot_id|>");
    p.flag("--ids", &ids_only, "print only the ids, space-separated, on one line");
    if (!p.parse(argc, argv)) return 0;
    if (model.empty()) throw UsageError("-m MODEL is required");
    if (p.given("--prompt") == p.given("--file")) throw UsageError("give exactly one of -p TEXT and -f FILE");
    if (p.given("--file")) prompt = read_text_file("-f", file);

    // Failures throw the library's message unchanged (run_guarded prints "error: ..." and exits 1).
    auto ok = [](tessera_status st) {
        if (st != TESSERA_OK) throw std::runtime_error(tessera_last_error());
    };
    ModelHandle vocab;
    ok(tessera_vocab_open(model.c_str(), &vocab.m));
    std::vector<tessera_token> ids(prompt.size() + 16);
    int32_t n = 0;
    tessera_status st = tessera_tokenize(vocab.m, prompt.data(), int32_t(prompt.size()), !no_bos, parse_special,
                                         ids.data(), int32_t(ids.size()), &n);
    if (st == TESSERA_ERR_BUFFER_TOO_SMALL) {
        ids.resize(size_t(n));
        st = tessera_tokenize(vocab.m, prompt.data(), int32_t(prompt.size()), !no_bos, parse_special, ids.data(), n,
                              &n);
    }
    ok(st);
    ids.resize(size_t(n));
    auto piece_of = [&](tessera_token id) {
        std::vector<char> buf(64);
        size_t len = 0;
        tessera_status s = tessera_token_to_piece_ext(vocab.m, id, 1, buf.data(), buf.size(), &len);
        if (s == TESSERA_ERR_BUFFER_TOO_SMALL) {
            buf.resize(len + 1);
            s = tessera_token_to_piece_ext(vocab.m, id, 1, buf.data(), buf.size(), &len);
        }
        ok(s);
        return std::string(buf.data(), len);
    };
    if (ids_only) {
        std::string line;
        for (size_t i = 0; i < ids.size(); ++i) {
            if (i) line += ' ';
            line += std::to_string(ids[i]);
        }
        std::printf("%s\n", line.c_str());
    } else {
        for (tessera_token id : ids) std::printf("%d\t'%s'\n", id, show_piece(piece_of(id)).c_str());
    }
    return 0;
}

int cmd_tokenize(int argc, char** argv) {
    return run_guarded("tokenize", [&] { return tokenize(argc, argv); });
}

RegisterCommand reg("tokenize", "show the tokens of a text (-m MODEL -p TEXT)", cmd_tokenize);

}  // namespace

}  // namespace tessera::cli
