// Channels of a streamed answer. gpt-oss answers in OpenAI's harmony format: each message is a header
// (<|start|>assistant<|channel|>NAME ... <|message|>) and a body ending in <|end|>, <|return|> or <|call|>;
// the "analysis" channel holds the model's reasoning and "final" the answer meant for the user. A
// ChannelFilter turns the raw streamed text into what a chat front end shows: the final channel's bodies,
// and the others only when asked (each then opened with "[NAME] " and closed with a newline). Text that
// does not open with a header is taken as a final body. For formats without channels nothing is filtered.
#pragma once
#include <string>
#include <string_view>

namespace tessera {

class ChannelFilter {
public:
    // harmony: filter by channel; false: pass text through unchanged.
    ChannelFilter(bool harmony, bool show_other_channels) : harmony_(harmony), show_other_(show_other_channels) {}
    // The visible text the pushed text completes (text that may be the start of a marker is held back).
    std::string push(std::string_view text);
    // The rest: a held-back body tail (when visible); an unfinished header is dropped.
    std::string flush();

private:
    bool visible() const { return channel_ == "final" || show_other_; }
    bool harmony_, show_other_;
    bool in_body_ = false;
    std::string channel_;
    std::string pending_;
};

}  // namespace tessera
