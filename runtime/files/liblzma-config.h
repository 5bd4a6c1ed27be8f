/* liblzma's configuration for the pyferry runtime (x86_64 Linux, glibc 2.17, zig cc).
 * Written for runtime/recipe/libraries.py:build_xz; replaces what xz's configure would find. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#define PACKAGE_NAME "XZ Utils"
#define PACKAGE_URL "https://tukaani.org/xz/"
#define SIZEOF_SIZE_T 8
#define HAVE_STDBOOL_H 1
#define HAVE__BOOL 1
#define HAVE_STDINT_H 1
#define HAVE_INTTYPES_H 1
#define HAVE_STRING_H 1
#define HAVE_VISIBILITY 1
#define HAVE_FUNC_ATTRIBUTE_CONSTRUCTOR 1
#define HAVE_CPUID_H 1
#define HAVE_IMMINTRIN_H 1

/* Every filter, match finder and check, as in Debian's liblzma5. */
#define HAVE_ENCODERS 1
#define HAVE_DECODERS 1
#define HAVE_ENCODER_LZMA1 1
#define HAVE_DECODER_LZMA1 1
#define HAVE_ENCODER_LZMA2 1
#define HAVE_DECODER_LZMA2 1
#define HAVE_ENCODER_DELTA 1
#define HAVE_DECODER_DELTA 1
#define HAVE_ENCODER_X86 1
#define HAVE_DECODER_X86 1
#define HAVE_ENCODER_POWERPC 1
#define HAVE_DECODER_POWERPC 1
#define HAVE_ENCODER_IA64 1
#define HAVE_DECODER_IA64 1
#define HAVE_ENCODER_ARM 1
#define HAVE_DECODER_ARM 1
#define HAVE_ENCODER_ARMTHUMB 1
#define HAVE_DECODER_ARMTHUMB 1
#define HAVE_ENCODER_ARM64 1
#define HAVE_DECODER_ARM64 1
#define HAVE_ENCODER_SPARC 1
#define HAVE_DECODER_SPARC 1
#define HAVE_ENCODER_RISCV 1
#define HAVE_DECODER_RISCV 1
#define HAVE_LZIP_DECODER 1
#define HAVE_MICROLZMA 1
#define HAVE_MF_HC3 1
#define HAVE_MF_HC4 1
#define HAVE_MF_BT2 1
#define HAVE_MF_BT3 1
#define HAVE_MF_BT4 1
#define HAVE_CHECK_CRC32 1
#define HAVE_CHECK_CRC64 1
#define HAVE_CHECK_SHA256 1

/* Threads (the multithreaded .xz encoder and decoder), with a monotonic clock. */
#define MYTHREAD_POSIX 1
#define HAVE_CLOCK_GETTIME 1
#define HAVE_DECL_CLOCK_MONOTONIC 1
#define HAVE_PTHREAD_CONDATTR_SETCLOCK 1

/* Number of processors and physical memory, for the thread and memory limits. */
#define TUKLIB_CPUCORES_SCHED_GETAFFINITY 1
#define TUKLIB_PHYSMEM_SYSCONF 1
#define TUKLIB_FAST_UNALIGNED_ACCESS 1
