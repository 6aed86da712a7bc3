// Byte-level BPE pre-tokenizers: the regex lists each tokenizer.ggml.pre name stands for.
#pragma once
#include <string>
#include <vector>

namespace tessera {

struct PreTokenizerSpec {
    std::vector<std::string> regexes;  // applied in order (see unicode::RegexSplitter)
    bool ignore_merges = false;        // a pre-token that is itself a vocabulary entry is emitted whole
};

// Throws tessera::Error for a name tessera does not know, listing the known ones.
PreTokenizerSpec pre_tokenizer_spec(const std::string& pre_name);

}  // namespace tessera
