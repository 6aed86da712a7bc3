// Temporary files a writer has open, so that a signal that ends the process can remove them.
// GGUFWriter writes FILE.tmp.XXXXXX and renames it over FILE when complete; a Ctrl-C in between would
// otherwise leave a partial file (gigabytes, for a large model) beside the target. The library installs
// no signal handler itself (an app owns its signals): the tessera command's handler calls
// remove_registered_temp_files(), and an app may do the same from its own.
#pragma once

namespace tessera {

// Holds one path in the registry for its lifetime. A path that does not fit (longer than PATH_MAX, or
// more than a few writers at once) is simply not registered: the file is then only left behind by a signal.
class TempFileRegistration {
public:
    explicit TempFileRegistration(const char* path);
    ~TempFileRegistration();
    TempFileRegistration(const TempFileRegistration&) = delete;
    TempFileRegistration& operator=(const TempFileRegistration&) = delete;

private:
    int slot_ = -1;
};

// Unlinks every registered path. Async-signal-safe: it reads fixed buffers and calls only unlink(2).
void remove_registered_temp_files() noexcept;

}  // namespace tessera
