#ifndef CCORE_H
#define CCORE_H
/* The C side of Core: what the CPU offers (each answer asked once and cached), and the SHA-256 compression with the
 * x86 SHA extensions. No library is linked: CHDF5, CFusion and Core read the CPU through this one file. */
#include <stddef.h>
#include <stdint.h>

/* ---- CPU features (cpu.c); 0 on other architectures ------------------------------------------------------ */
/** AVX2 with the OS saving YMM state (leaf 7 EBX bit 5; AVX and OSXSAVE, leaf 1 ECX bits 28 and 27; XCR0 bits 1-2). */
int cc_cpu_avx2(void);
/** BMI2 (leaf 7 EBX bit 8). */
int cc_cpu_bmi2(void);
/** F16C with AVX and the OS saving YMM state (leaf 1 ECX bits 29, 28, 27; XCR0 bits 1-2). */
int cc_cpu_f16c(void);
/** The SHA extensions with SSE4.1 and SSSE3 (leaf 7 EBX bit 29; leaf 1 ECX bits 19 and 9). */
int cc_cpu_sha(void);

/* ---- SHA-256 with the x86 SHA extensions (sha256_ni.c) ------------------------------------------------- */
/** Runs SHA-256's compression over `blocks` 64-byte blocks into `state` (8 words, host order) with SHA-NI;
 *  returns 0 (and does nothing) when the CPU has no SHA extensions, 1 when done. */
int cc_sha256_blocks(uint32_t state[8], const uint8_t *data, size_t blocks);

#endif
