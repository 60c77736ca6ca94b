/* A driver library with only cuInit (returning success): every other entry point is missing. */
int cuInit(unsigned flags) { (void)flags; return 0; }
