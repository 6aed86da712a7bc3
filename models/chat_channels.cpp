#include "models/chat_channels.h"

#include <algorithm>

namespace tessera {

namespace {

const std::string_view kMessage = "<|message|>";
const std::string_view kChannel = "<|channel|>";
const std::string_view kBodyEnds[] = {"<|end|>", "<|return|>", "<|call|>"};

// Length of the longest suffix of s that is a proper prefix of marker (it may still become the marker).
size_t partial_marker(std::string_view s, std::string_view marker) {
    for (size_t n = std::min(s.size(), marker.size() - 1); n > 0; --n)
        if (s.substr(s.size() - n) == marker.substr(0, n)) return n;
    return 0;
}

}  // namespace

std::string ChannelFilter::push(std::string_view text) {
    if (!harmony_) return std::string(text);
    pending_.append(text);
    std::string out;
    for (;;) {
        if (!in_body_) {
            const size_t lead = pending_.find_first_not_of(" \t\r\n");
            if (lead == std::string::npos) break;
            // No header: the model writes plain text, which is all the answer there is.
            if (pending_.compare(lead, 2, "<|") != 0 && pending_.size() - lead >= 2) {
                channel_ = "final";
                in_body_ = true;
                continue;
            }
            const size_t msg = pending_.find(kMessage);
            if (msg == std::string::npos) break;
            const std::string_view header(pending_.data(), msg);
            channel_ = "final";  // a header without a channel (older renderings) carries the answer
            if (size_t c = header.find(kChannel); c != std::string_view::npos) {
                const std::string_view rest = header.substr(c + kChannel.size());
                channel_ = std::string(rest.substr(0, std::min(rest.find("<|"), rest.find(' '))));
            }
            pending_.erase(0, msg + kMessage.size());
            in_body_ = true;
            if (channel_ != "final" && show_other_) out += "[" + channel_ + "] ";
            continue;
        }
        size_t end = std::string::npos, end_len = 0;
        for (std::string_view m : kBodyEnds)
            if (size_t p = pending_.find(m); p < end) end = p, end_len = m.size();
        if (end != std::string::npos) {
            if (visible()) out.append(pending_, 0, end);
            if (channel_ != "final" && show_other_) out += "\n";
            pending_.erase(0, end + end_len);
            in_body_ = false;
            continue;
        }
        size_t hold = 0;
        for (std::string_view m : kBodyEnds) hold = std::max(hold, partial_marker(pending_, m));
        if (visible()) out.append(pending_, 0, pending_.size() - hold);
        pending_.erase(0, pending_.size() - hold);
        break;
    }
    return out;
}

std::string ChannelFilter::flush() {
    std::string out;
    if (harmony_ && in_body_ && visible()) out = pending_;
    pending_.clear();
    return out;
}

}  // namespace tessera
