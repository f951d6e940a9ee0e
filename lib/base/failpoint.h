/* Failpoints: named places where a test build can be told to crash or
 * fail, to prove that a crash there loses nothing. Compiled in only with
 * -DMQTX_FAILPOINTS (the test and ASan builds); in release builds
 * MQTX_FAILPOINT(name) is the constant 0 and no code or string remains.
 *
 * MQTX_FAILPOINTS="relay.after_publish=crash,relay.after_claim=error@3"
 *   crash   SIGKILL this process (nothing flushed, like a power cut)
 *   abort   abort()
 *   error   MQTX_FAILPOINT() returns -1: the caller fails as if the step failed
 *   sleep:N sleep N ms, then go on
 *   @K      act on the K-th time the point is reached (default: the first) */
#ifndef MQTX_FAILPOINT_H
#define MQTX_FAILPOINT_H

#ifdef MQTX_FAILPOINTS
int mqtx_failpoint(const char *name);
#define MQTX_FAILPOINT(name) mqtx_failpoint(name)
#else
#define MQTX_FAILPOINT(name) ((void)0, 0)
#endif

#endif
