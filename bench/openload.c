/*
 * openload: a fixed-rate (open-loop) HTTP load generator for POST /v1/predict.
 *
 * wrk measures throughput at saturation; a latency target "at 1,000 requests/s" needs a fixed
 * offered rate. Requests are scheduled every 1/rate seconds whatever the server does, and each
 * latency is counted from its scheduled time, so a stall shows as queueing in the percentiles
 * (what wrk2 does; wrk2 is not packaged for this system). Random customers and merchants.
 *
 *   openload HOST PORT RATE SECONDS CONNECTIONS CUSTOMERS MERCHANTS PATH [TIMESTAMP]
 *
 * TIMESTAMP (ISO 8601) is sent as the transaction time, so that the features of a data set
 * that ended in the past are judged fresh, as they would be live.
 *
 * Prints one JSON line: sent, completed, errors, achieved rate and latency percentiles (ms).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAXC 256
#define BUF 16384

typedef struct {
    int fd;
    int busy;
    double started;     /* scheduled time of the request in flight */
    size_t have;
    char in[BUF];
} conn_t;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int dial(const char *host, int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &addr.sin_addr);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) { perror("connect"); exit(1); }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

/* A complete response in c->in? Returns its status code, 0 if incomplete. */
static int complete(conn_t *c) {
    c->in[c->have] = 0;
    char *end = strstr(c->in, "\r\n\r\n");
    if (!end) return 0;
    char *cl = strcasestr(c->in, "content-length:");
    size_t body = cl ? (size_t)atol(cl + 15) : 0;
    if ((size_t)(end + 4 - c->in) + body > c->have) return 0;
    return atoi(c->in + 9);
}

int main(int argc, char **argv) {
    if (argc != 9 && argc != 10) {
        fprintf(stderr, "usage: %s HOST PORT RATE SECONDS CONNECTIONS CUSTOMERS MERCHANTS PATH [TIMESTAMP]\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *path = argv[8], *stamp = argc == 10 ? argv[9] : NULL;
    int port = atoi(argv[2]), conns = atoi(argv[5]), customers = atoi(argv[6]), merchants = atoi(argv[7]);
    double rate = atof(argv[3]), seconds = atof(argv[4]);
    if (conns > MAXC) conns = MAXC;
    long total = (long)(rate * seconds);
    double *lat = calloc(total, sizeof(double));
    double *queue = calloc(total, sizeof(double));  /* scheduled times waiting for a connection */
    long qhead = 0, qtail = 0, sent = 0, done = 0, errors = 0;
    conn_t *c = calloc(conns, sizeof(conn_t));
    int ep = epoll_create1(0);
    for (int i = 0; i < conns; i++) {
        c[i].fd = dial(host, port);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev);
    }
    /* A timer file descriptor wakes the loop at each scheduled send with ns precision: epoll's
       own timeout counts whole milliseconds and would make the loop spin, stealing a core. */
    int timer = timerfd_create(CLOCK_MONOTONIC, 0);
    struct epoll_event tev = {.events = EPOLLIN, .data.u32 = MAXC};
    epoll_ctl(ep, EPOLL_CTL_ADD, timer, &tev);
    srand(42);
    double start = now(), interval = 1.0 / rate, next = start;
    char req[1024], body[256];
    struct epoll_event events[MAXC];
    while (done + errors < total) {
        double t = now();
        while (sent < total && next <= t) { queue[qtail++] = next; sent++; next = start + sent * interval; }
        for (int i = 0; i < conns && qhead < qtail; i++) {
            if (c[i].busy) continue;
            int n = snprintf(body, sizeof body, "{\"customer_id\": %d, \"merchant_id\": %d, \"amount\": %.2f%s%s%s}",
                             1 + rand() % customers, 1 + rand() % merchants, (rand() % 30000) / 100.0,
                             stamp ? ", \"timestamp\": \"" : "", stamp ? stamp : "", stamp ? "\"" : "");
            int m = snprintf(req, sizeof req,
                             "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                             path, host, n, body);
            if (write(c[i].fd, req, m) != m) { errors++; qhead++; continue; }
            c[i].busy = 1; c[i].started = queue[qhead++]; c[i].have = 0;
        }
        if (sent < total) {
            struct timespec at = {.tv_sec = (time_t)next, .tv_nsec = (long)((next - (time_t)next) * 1e9)};
            struct itimerspec spec = {.it_value = at};
            timerfd_settime(timer, TFD_TIMER_ABSTIME, &spec, NULL);
        }
        int k = epoll_wait(ep, events, MAXC, sent < total ? -1 : 50);
        for (int e = 0; e < k; e++) {
            if (events[e].data.u32 == MAXC) { uint64_t ticks; if (read(timer, &ticks, sizeof ticks)) {} continue; }
            conn_t *x = &c[events[e].data.u32];
            ssize_t r = read(x->fd, x->in + x->have, BUF - 1 - x->have);
            if (r < 0 && errno == EAGAIN) continue;
            if (r <= 0) {  /* closed by the server (idle keep-alive timeout): reconnect */
                if (x->busy) errors++;
                epoll_ctl(ep, EPOLL_CTL_DEL, x->fd, NULL);
                close(x->fd);
                x->fd = dial(host, port);
                x->busy = 0;
                struct epoll_event ev = {.events = EPOLLIN, .data.u32 = events[e].data.u32};
                epoll_ctl(ep, EPOLL_CTL_ADD, x->fd, &ev);
                continue;
            }
            x->have += r;
            int status = complete(x);
            if (!status) continue;
            if (status == 200) lat[done++] = (now() - x->started) * 1000; else errors++;
            x->busy = 0;
        }
    }
    double elapsed = now() - start;
    qsort(lat, done, sizeof(double), cmp);
#define P(q) (done ? lat[(long)((q) * (done - 1))] : 0)
    printf("OPENLOAD_JSON {\"offered_rps\": %.1f, \"achieved_rps\": %.1f, \"sent\": %ld, \"completed\": %ld, "
           "\"errors\": %ld, \"p50_ms\": %.4f, \"p90_ms\": %.4f, \"p99_ms\": %.4f, \"p999_ms\": %.4f, \"max_ms\": %.4f}\n",
           rate, done / elapsed, sent, done, errors, P(0.5), P(0.9), P(0.99), P(0.999), done ? lat[done - 1] : 0);
    return 0;
}
