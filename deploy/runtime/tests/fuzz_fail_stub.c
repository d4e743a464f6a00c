/* esr__fail for code linked outside libedgesr (the fuzz driver's copy of meta.c): the
 * library's own is hidden. Messages are formatted (to exercise the format strings) and dropped. */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

esr_status esr__fail(esr_status status, const char* fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return status;
}
