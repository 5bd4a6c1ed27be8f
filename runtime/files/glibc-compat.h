/* Declarations of what runtime/files/glibc-compat.c defines, for glibc 2.17's headers, which
 * do not declare them (zig's headers follow the glibc version targeted). Force-included into
 * every CPython compile (`-include`, runtime/recipe/cpython.py); declarations only, so they
 * agree with any the system headers make. */
int memfd_create(const char *name, unsigned int flags);
