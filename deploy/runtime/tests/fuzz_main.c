/* A deterministic, bounded fuzz driver (no libFuzzer needed): feeds ITERATIONS pseudo-random
 * inputs from a fixed SEED to one target, so a ctest run is reproducible and time-bounded.
 * Usage: fuzz_edgesr frames|loader|sidecar MODEL|- ITERATIONS SEED */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_edgesr.h"

static uint64_t g_state;

static uint64_t next_random(void) { /* xorshift64* */
  g_state ^= g_state >> 12;
  g_state ^= g_state << 25;
  g_state ^= g_state >> 27;
  return g_state * 0x2545F4914F6CDD1DULL;
}

/* Sidecar inputs: random bytes, or JSON-looking text: an object whose keys and values are
 * drawn from valid and broken tokens, so the parser's accepting paths are reached too. */
static size_t json_like(uint8_t* buf, size_t cap) {
  static const char* keys[] = {"\"scale\"", "\"color\"", "\"name\"", "\"sc\\\"ale\"", "scale", "", "\"precision\""};
  static const char* values[] = {"4", "16", "17", "0", "-2", "3.5", "\"y_bt601\"", "\"rgb\"",
                                 "\"bgr\"", "\"a\\\"b\"", "true", "null", "{\"x\": [1, {\"y\": \"}\"}]}",
                                 "[", "\"", "2", "\"rgb", ""};
  static const char* seps[] = {",", ", ", " ,\n", "", ";"};
  size_t n = 0, k = next_random() % 5, i;
  const char* parts[32];
  size_t np = 0;
  parts[np++] = next_random() % 16 ? "{" : "[";
  for (i = 0; i < k; ++i) {
    int r = (int)(next_random() % 8);
    parts[np++] = r < 3 ? keys[0] : r < 6 ? keys[1] : keys[next_random() % 7];
    parts[np++] = next_random() % 16 ? ": " : " ";
    /* Mostly a value of the key's own kind, so that whole valid objects occur often. */
    if (next_random() % 5 != 0 && parts[np - 2] == keys[0]) {
      parts[np++] = values[next_random() % 6];
    } else if (next_random() % 5 != 0 && parts[np - 2] == keys[1]) {
      parts[np++] = values[6 + next_random() % 3];
    } else {
      parts[np++] = values[next_random() % (sizeof values / sizeof values[0])];
    }
    if (i + 1 < k) parts[np++] = next_random() % 8 ? seps[0] : seps[next_random() % 5];
  }
  parts[np++] = next_random() % 16 ? "}" : "";
  for (i = 0; i < np; ++i) {
    size_t len = strlen(parts[i]);
    if (n + len > cap) break;
    memcpy(buf + n, parts[i], len);
    n += len;
  }
  /* Sometimes cut it short anywhere. */
  if (n > 0 && next_random() % 8 == 0) n = next_random() % n;
  return n;
}

int main(int argc, char** argv) {
  uint8_t buf[512];
  unsigned long i, iterations;
  int (*target)(const uint8_t*, size_t);
  if (argc != 5) {
    fprintf(stderr, "usage: %s frames|loader|sidecar MODEL|- ITERATIONS SEED\n", argv[0]);
    return 2;
  }
  if (strcmp(argv[1], "frames") == 0) target = esr_fuzz_frames;
  else if (strcmp(argv[1], "loader") == 0) target = esr_fuzz_loader;
  else if (strcmp(argv[1], "sidecar") == 0) target = esr_fuzz_sidecar;
  else return 2;
  iterations = strtoul(argv[3], NULL, 10);
  g_state = 0x9E3779B97F4A7C15ULL ^ strtoull(argv[4], NULL, 10);
  if (esr_fuzz_setup(argv[2]) != 0) return 1;
  for (i = 0; i < iterations; ++i) {
    size_t n = next_random() % sizeof buf, k;
    if (target == esr_fuzz_sidecar && (i & 1)) {
      n = json_like(buf, sizeof buf);
    } else {
      for (k = 0; k < n; ++k) buf[k] = (uint8_t)(next_random() >> 56);
    }
    target(buf, n);
  }
  esr_fuzz_teardown();
  printf("fuzz %s: %lu inputs, %lu accepted, %lu rejected, 0 contract violations\n", argv[1],
         iterations, esr_fuzz_ok, esr_fuzz_errors);
  printf("%lu passed, 0 failed\n", iterations);
  return 0;
}
