#include "models/tokenizer_pre.h"

#include "core/error.h"

namespace tessera {

namespace {

// The regexes below are the pre-tokenizer patterns of the Hugging Face tokenizer.json files these names
// stand for, in the form llama.cpp uses them (case-insensitive contractions spelled out as classes, one
// list entry per split pass). They are run by PCRE2 with UTF and Unicode properties.

// GPT-2's pattern; also MPT, OLMo, ... and the second pass of several others.
const char* const kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";

// Llama 3 (tiktoken cl100k style): numbers in groups of up to three digits.
const char* const kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Qwen2: as Llama 3, but every digit is its own piece.
const char* const kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// GPT-4o's o200k pattern (gpt-oss): words split at case changes, with an optional leading non-letter and
// a trailing contraction, numbers in groups of up to three digits, punctuation runs that take trailing
// newlines and slashes.
const char* const kGpt4o =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|)"
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|)"
    R"(\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

}  // namespace

PreTokenizerSpec pre_tokenizer_spec(const std::string& pre) {
    PreTokenizerSpec s;
    if (pre == "default" || pre.empty()) {
        s.regexes = {
            R"([\p{P}\$\+<=>\^~\|]+)",
            kGpt2,
            R"(\p{N}+)",
            R"([0-9][0-9][0-9])",
        };
    } else if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "falcon3" || pre == "dbrx" ||
               pre == "smaug-bpe") {
        s.regexes = {kLlama3};
        s.ignore_merges = true;
    } else if (pre == "deepseek-llm") {
        s.regexes = {
            "[\r\n]",
            // Letters of the scripts DeepSeek LLM lists explicitly (Latin, Greek, Cyrillic, Armenian, ...).
            R"(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)",
            R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)",
            R"(\s+$)",
            R"([\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+)",
            R"(\p{N}+)",
        };
    } else if (pre == "deepseek-v3") {
        s.regexes = {
            R"(\p{N}{1,3})",
            R"([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)",
            R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
        };
    } else if (pre == "deepseek-coder") {
        s.regexes = {
            "[\r\n]",
            R"(\s?\p{L}+)",
            R"(\s?\p{P}+)",
            R"([\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+)",
            R"(\p{N})",
        };
    } else if (pre == "falcon") {
        s.regexes = {
            R"([\p{P}\$\+<=>\^~\|`]+)",
            kGpt2,
            R"([0-9][0-9][0-9])",
        };
    } else if (pre == "starcoder" || pre == "refact" || pre == "command-r" || pre == "smollm" || pre == "codeshell" ||
               pre == "exaone" || pre == "minerva-7b") {
        s.regexes = {R"(\p{N})", kGpt2};
    } else if (pre == "gpt-2" || pre == "gpt2" || pre == "mpt" || pre == "olmo" || pre == "phi-2" || pre == "jais" ||
               pre == "roberta-bpe") {
        s.regexes = {kGpt2};
    } else if (pre == "qwen2" || pre == "stablelm2" || pre == "deepseek-r1-qwen") {
        s.regexes = {kQwen2};
    } else if (pre == "gpt-4o") {
        s.regexes = {kGpt4o};
    } else {
        throw Error("unknown pre-tokenizer '" + pre +
                    "' (tokenizer.ggml.pre); known: default, llama-bpe, deepseek-llm, deepseek-v3, deepseek-coder, "
                    "falcon, starcoder, refact, gpt-2, mpt, qwen2, gpt-4o, ...",
                    Status::Unsupported);
    }
    return s;
}

}  // namespace tessera
