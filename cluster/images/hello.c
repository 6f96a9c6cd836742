/* A tiny test workload for cluster/smoke.sh: prints which variant it is, then waits for
 * SIGTERM/SIGINT. Built twice (-DVARIANT="a", -DVARIANT="b") so the two images differ in
 * content and so in image ID, which an in-place update needs. */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#ifndef VARIANT
#define VARIANT "a"
#endif

static void quit(int sig) { (void)sig; _exit(0); }

int main(void) {
    signal(SIGINT, quit);
    signal(SIGTERM, quit);
    printf("imagekit cluster smoke workload, variant %s\n", VARIANT);
    fflush(stdout);
    for (;;)
        pause();
}
