/* A library the "needs_gone" fake module links against and then cannot find (no rpath, not installed). */
int tessera_test_gone_value(void) { return 1; }
