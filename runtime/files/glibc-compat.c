/* glibc functions CPython uses that came after glibc 2.17, the runtime's floor: memfd_create()
 * and copy_file_range() (both glibc 2.27). configure is told they exist
 * (runtime/recipe/cpython.py), so os.memfd_create, the os.MFD_* constants and
 * os.copy_file_range are built; these definitions make the system calls directly, as glibc's
 * own do, and a kernel without them answers ENOSYS, which the os functions raise as OSError.
 * Linked into every CPython program of the build (LIBS) and folded into lib/python.o, where
 * they are local: the launcher exports neither. */

#define _GNU_SOURCE
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef __NR_memfd_create
#  define __NR_memfd_create 319
#endif
#ifndef __NR_copy_file_range
#  define __NR_copy_file_range 326
#endif

int
memfd_create(const char *name, unsigned int flags)
{
    return (int)syscall(__NR_memfd_create, name, flags);
}

ssize_t
copy_file_range(int fd_in, off_t *off_in, int fd_out, off_t *off_out, size_t length,
                unsigned int flags)
{
    return (ssize_t)syscall(__NR_copy_file_range, fd_in, off_in, fd_out, off_out, length, flags);
}
