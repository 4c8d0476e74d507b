/* The example's program: a static binary that says which architecture it was built for. */
#include <string.h>
#include <unistd.h>

#ifndef ARCH
#define ARCH "unknown"
#endif

int main(void) {
    const char *m = "hello from " ARCH "\n";
    write(1, m, strlen(m));
    return 0;
}
