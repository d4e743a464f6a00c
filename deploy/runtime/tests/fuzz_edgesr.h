/* Fuzz targets shared by the deterministic driver (fuzz_main.c) and libFuzzer. */
#ifndef EDGESR_FUZZ_H_
#define EDGESR_FUZZ_H_
#include <stddef.h>
#include <stdint.h>

int esr_fuzz_setup(const char* model_path); /* "-" or NULL: no model (sidecar target only) */
void esr_fuzz_teardown(void);
int esr_fuzz_frames(const uint8_t* data, size_t size);
int esr_fuzz_loader(const uint8_t* data, size_t size);
int esr_fuzz_sidecar(const uint8_t* data, size_t size);
extern unsigned long esr_fuzz_ok, esr_fuzz_errors;

#endif
