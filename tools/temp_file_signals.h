// For the commands that write model files (quantize, make-model): a signal that ends the process first
// removes the temporary file being written, so a Ctrl-C leaves no partial FILE.tmp.XXXXXX beside the output.
#pragma once

namespace tessera::cli {

// Installs the handler for SIGINT, SIGTERM and SIGHUP, except where the signal is ignored (nohup, a shell's
// background job), which stays so. The handler removes the files, then ends the process as the signal would
// have, so the shell still sees "killed by SIGINT".
void remove_temp_files_on_fatal_signals();

}  // namespace tessera::cli
