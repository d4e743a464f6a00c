/* An ABI test: a client built against the first options layout (16 bytes: struct_size,
 * backend, num_threads, device_id) and a shorter esr_model_info than this library's, both in
 * exactly sized heap blocks, so ASan or valgrind sees any read or write past what the client
 * has. The library must read only those bytes, default the rest, and write only the client's
 * part of the info. Usage: abi_client_v0 MODEL_DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgesr.h"

/* What an older edgesr.h declared. */
typedef struct old_options {
  uint32_t struct_size;
  int32_t backend;
  int32_t num_threads;
  int32_t device_id;
} old_options;

typedef struct old_model_info {
  uint32_t struct_size;
  int32_t scale;
  int32_t color;
  int32_t channels;
  int32_t backend;
  int32_t num_threads;
} old_model_info;

int main(int argc, char** argv) {
  char path[2048];
  old_options* o = (old_options*)malloc(sizeof *o);
  old_model_info* info = (old_model_info*)malloc(sizeof *info);
  esr_model_info full;
  esr_model* m = NULL;
  esr_stream* s = NULL;
  uint8_t src[6 * 4] = {0}, dst[12 * 8];
  int failed = 0;
  if (argc != 2 || o == NULL || info == NULL) return 2;
  snprintf(path, sizeof path, "%s/y_x2.onnx", argv[1]);
  /* An old client fills its struct by hand (its header had no esr_options_init). */
  o->struct_size = sizeof *o;
  o->backend = ESR_BACKEND_ONNXRUNTIME;
  o->num_threads = 1;
  o->device_id = 0;
  if (esr_model_create(path, (const esr_options*)(const void*)o, &m) != ESR_OK) {
    fprintf(stderr, "abi_client_v0: %s\n", esr_last_error());
    return 1;
  }
  info->struct_size = sizeof *info;
  info->channels = -7; /* inside the client's struct: must be overwritten */
  if (esr_model_get_info(m, (esr_model_info*)(void*)info) != ESR_OK) ++failed;
  if (info->struct_size != sizeof *info || info->scale != 2 || info->channels != 1 ||
      info->num_threads != 1) {
    fprintf(stderr, "abi_client_v0: old info %u %d %d %d\n", (unsigned)info->struct_size,
            (int)info->scale, (int)info->channels, (int)info->num_threads);
    ++failed;
  }
  /* The fields the old client could not set have their defaults. */
  memset(&full, 0, sizeof full);
  full.struct_size = sizeof full;
  if (esr_model_get_info(m, &full) != ESR_OK || full.intra_op_spinning != -1) {
    fprintf(stderr, "abi_client_v0: intra_op_spinning %d, want the default -1\n",
            (int)full.intra_op_spinning);
    ++failed;
  }
  if (esr_stream_create(m, &s) != ESR_OK || esr_upscale_y_u8(s, src, 6, 4, 6, dst, 12) != ESR_OK) {
    fprintf(stderr, "abi_client_v0: %s\n", esr_last_error());
    ++failed;
  }
  if (esr_abi_version() != ESR_ABI_VERSION) ++failed;
  esr_stream_destroy(s);
  esr_model_destroy(m);
  free(o);
  free(info);
  printf("abi_client_v0: %s\n", failed ? "FAILED" : "1 passed, 0 failed");
  return failed ? 1 : 0;
}
