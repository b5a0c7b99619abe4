/* A static helper placed inside test containers: makes one syscall with
 * harmless arguments and prints its result, so tests see exactly what a
 * seccomp filter or a capability set lets through.
 *   probe <syscall>   ->  "<syscall> ok" or "<syscall> errno=<n>"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static long call(const char *name) {
    if (!strcmp(name, "keyctl"))
        return syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0);
    if (!strcmp(name, "unshare"))
        return syscall(SYS_unshare, CLONE_NEWNS);
    if (!strcmp(name, "mount"))
        return syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, NULL);
    if (!strcmp(name, "chown"))
        return syscall(SYS_fchownat, AT_FDCWD, "/", 1, 1, 0);
    if (!strcmp(name, "getpid"))
        return syscall(SYS_getpid);
    fprintf(stderr, "probe: unknown syscall %s\n", name);
    _exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        errno = 0;
        long r = call(argv[i]);
        if (r < 0)
            printf("%s errno=%d\n", argv[i], errno);
        else
            printf("%s ok\n", argv[i]);
    }
    return 0;
}
