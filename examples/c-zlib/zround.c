/* Deflate a message with zlib, inflate it back, and say what happened. */
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <zlib.h>

int main(int argc, char **argv) {
    const char *text = argc > 1 ? argv[1] : "hello hello hello hello hello hello hello hello";
    unsigned char packed[1024], unpacked[1024];
    uLongf packed_len = sizeof packed, unpacked_len = sizeof unpacked;
    struct utsname host;
    if (compress2(packed, &packed_len, (const Bytef *)text, strlen(text), 9) != Z_OK) return 1;
    if (uncompress(unpacked, &unpacked_len, packed, packed_len) != Z_OK) return 2;
    if (unpacked_len != strlen(text) || memcmp(unpacked, text, unpacked_len) != 0) return 3;
    uname(&host);
    printf("zlib %s on %s: %zu bytes -> %lu bytes -> %lu bytes\n", zlibVersion(), host.machine,
           strlen(text), (unsigned long)packed_len, (unsigned long)unpacked_len);
    return 0;
}
