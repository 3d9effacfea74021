#include <stdio.h>
#include <sys/utsname.h>

int main(void) {
    struct utsname name;
    uname(&name);
    printf("Hello from C, built by xarch, running on %s\n", name.machine);
    return 0;
}
