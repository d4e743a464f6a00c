/* The consumer project's program: load a model, run one NV12 frame on each of two streams. */
#include <stdio.h>
#include <string.h>

#include <edgesr.h>

int main(int argc, char** argv) {
  esr_model* model = NULL;
  esr_stream* cam[2] = {NULL, NULL};
  uint8_t y[8 * 4], uv[8 * 2], oy[16 * 8], ouv[16 * 4];
  esr_image in, out;
  int i, rc = 0;
  if (argc != 2 || esr_abi_version() != EXPECTED_ABI || esr_abi_version() != ESR_ABI_VERSION) {
    fprintf(stderr, "consumer: usage or ABI mismatch (%u)\n", (unsigned)esr_abi_version());
    return 2;
  }
  if (esr_model_create(argv[1], NULL, &model) != ESR_OK) {
    fprintf(stderr, "consumer: %s\n", esr_last_error());
    return 1;
  }
  memset(y, 50, sizeof y);
  memset(uv, 128, sizeof uv);
  memset(&in, 0, sizeof in);
  in.struct_size = sizeof in;
  in.format = ESR_PIXEL_NV12;
  in.width = 8;
  in.height = 4;
  in.planes[0] = y;
  in.pitches[0] = 8;
  in.planes[1] = uv;
  in.pitches[1] = 8;
  out = in;
  out.width = 16;
  out.height = 8;
  out.planes[0] = oy;
  out.pitches[0] = 16;
  out.planes[1] = ouv;
  out.pitches[1] = 16;
  for (i = 0; i < 2; ++i) {
    if (esr_stream_create(model, &cam[i]) != ESR_OK || esr_upscale_image(cam[i], &in, &out) != ESR_OK ||
        oy[0] != 50 || ouv[0] != 128) {
      fprintf(stderr, "consumer: stream %d: %s\n", i, esr_last_error());
      rc = 1;
    }
  }
  esr_stream_destroy(cam[0]);
  esr_stream_destroy(cam[1]);
  esr_model_destroy(model);
  printf("consumer: %s, %s\n", esr_version(), rc ? "FAILED" : "ok");
  return rc;
}
