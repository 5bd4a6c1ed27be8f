/* expat's configuration for the pyferry runtime (x86_64 Linux, glibc 2.17, zig cc).
 * Written for runtime/recipe/libraries.py:build_expat: Debian's source is a git snapshot
 * without a generated configure, so this replaces what configure/CMake would find. */
#define BYTEORDER 1234
#define HAVE_STDINT_H 1
#define HAVE_STDLIB_H 1
#define HAVE_STRING_H 1
#define HAVE_UNISTD_H 1
#define HAVE_FCNTL_H 1
#define HAVE_MMAP 1
/* Hash salt entropy: the getrandom system call (glibc 2.17 has no getrandom() function),
 * then /dev/urandom. */
#define HAVE_SYSCALL_GETRANDOM 1
#define XML_DEV_URANDOM 1
/* The features Debian's libexpat1 and CPython's bundled copy enable. */
#define XML_NS 1
#define XML_DTD 1
#define XML_CONTEXT_BYTES 1024
