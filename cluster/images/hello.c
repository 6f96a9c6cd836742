/* A tiny test workload for cluster/smoke.sh: prints which variant it is, then answers every TCP
 * connection on port 8080 with that same line until SIGTERM/SIGINT. Built twice (-DVARIANT="a",
 * -DVARIANT="b") so the two images differ in content and so in image ID, which an in-place
 * update needs. */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef VARIANT
#define VARIANT "a"
#endif

static const char line[] = "imagekit cluster smoke workload, variant " VARIANT "\n";

static void quit(int sig) { (void)sig; _exit(0); }

int main(void) {
    struct sockaddr_in addr;
    int one = 1, server, client;

    signal(SIGINT, quit);
    signal(SIGTERM, quit);
    signal(SIGPIPE, SIG_IGN);
    fputs(line, stdout);
    fflush(stdout);

    server = socket(AF_INET, SOCK_STREAM, 0);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(8080);
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (server < 0 || bind(server, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(server, 16) < 0) {
        perror("listen on :8080");
        for (;;)
            pause();
    }
    for (;;) {
        client = accept(server, NULL, NULL);
        if (client < 0)
            continue;
        if (write(client, line, sizeof line - 1) < 0)
            perror("write");
        close(client);
    }
}
