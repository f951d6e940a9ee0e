/* tcp_proxy: a loopback TCP proxy for fault injection in tests.
 * usage: tcp_proxy TARGET_PORT [--control FIFO]
 * Listens on 127.0.0.1 (an ephemeral port, printed as one line on stdout)
 * and forwards every connection to 127.0.0.1:TARGET_PORT. Commands, one per
 * line on the control FIFO:
 *   cut     reset every open connection (RST), keep accepting
 *   stall   stop moving bytes (connections hang, as on a dead network)
 *   resume  move bytes again
 *   refuse  reset new connections at once
 *   accept  accept and forward new connections again
 *   cut-after TEXT   once: the first connection whose client sends TEXT
 *           (within one read) is reset when its client sends anything
 *           after that, i.e. just after the server answered the statement
 * Every accepted connection (forwarded or reset) is logged on stderr as
 * "tcp_proxy: connection N", so tests can count connection attempts.
 * Runs until SIGTERM/SIGINT. Only loopback addresses are used. */
#define _POSIX_C_SOURCE 200809L
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAXC 256

struct pair {
	int a, b; /* client side, server side; -1 when unused */
};

static volatile sig_atomic_t done;
static void on_sig(int s)
{
	(void)s;
	done = 1;
}

static void rst_close(int fd)
{
	if (fd < 0)
		return;
	struct linger l = {.l_onoff = 1, .l_linger = 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

static int connect_target(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	if (argc != 2 && argc != 4) {
		fprintf(stderr, "usage: tcp_proxy TARGET_PORT [--control FIFO]\n");
		return 2;
	}
	int target = atoi(argv[1]);
	const char *fifo = argc == 4 ? argv[3] : NULL;
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sig;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	int ls = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in la = {.sin_family = AF_INET, .sin_port = 0};
	la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t ll = sizeof(la);
	if (bind(ls, (struct sockaddr *)&la, sizeof(la)) < 0 || listen(ls, 64) < 0 ||
	    getsockname(ls, (struct sockaddr *)&la, &ll) < 0) {
		perror("tcp_proxy: listen");
		return 2;
	}
	int cfd = -1;
	if (fifo != NULL) {
		unlink(fifo);
		if (mkfifo(fifo, 0600) < 0) {
			perror("tcp_proxy: mkfifo");
			return 2;
		}
		cfd = open(fifo, O_RDWR | O_NONBLOCK); /* RDWR: never sees EOF */
	}
	printf("%d\n", ntohs(la.sin_port));
	fflush(stdout);

	struct pair p[MAXC];
	for (int i = 0; i < MAXC; i++)
		p[i].a = p[i].b = -1;
	int stalled = 0, refusing = 0;
	char cut_after[256] = "";
	int doomed = -1; /* the pair to reset at its client's next read */
	unsigned long accepted = 0;
	char cmd[256];
	size_t cmdlen = 0;

	while (!done) {
		struct pollfd pf[2 + 2 * MAXC];
		int n = 0;
		pf[n].fd = ls;
		pf[n++].events = POLLIN;
		pf[n].fd = cfd;
		pf[n++].events = POLLIN;
		for (int i = 0; i < MAXC; i++) {
			pf[n].fd = stalled ? -1 : p[i].a;
			pf[n++].events = POLLIN;
			pf[n].fd = stalled ? -1 : p[i].b;
			pf[n++].events = POLLIN;
		}
		if (poll(pf, (nfds_t)n, 200) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[0].revents & POLLIN) {
			int c = accept(ls, NULL, NULL);
			if (c >= 0) {
				fprintf(stderr, "tcp_proxy: connection %lu\n", ++accepted);
				int slot = -1;
				for (int i = 0; i < MAXC && slot < 0; i++)
					if (p[i].a < 0)
						slot = i;
				int s = (refusing || slot < 0) ? -1 : connect_target(target);
				if (s < 0) {
					rst_close(c);
				} else {
					p[slot].a = c;
					p[slot].b = s;
				}
			}
		}
		if (cfd >= 0 && (pf[1].revents & POLLIN)) {
			ssize_t r = read(cfd, cmd + cmdlen, sizeof(cmd) - 1 - cmdlen);
			if (r > 0)
				cmdlen += (size_t)r;
			char *nl;
			while ((nl = memchr(cmd, '\n', cmdlen)) != NULL) {
				*nl = '\0';
				if (strcmp(cmd, "cut") == 0) {
					for (int i = 0; i < MAXC; i++) {
						rst_close(p[i].a);
						rst_close(p[i].b);
						p[i].a = p[i].b = -1;
					}
				} else if (strcmp(cmd, "stall") == 0) {
					stalled = 1;
				} else if (strcmp(cmd, "resume") == 0) {
					stalled = 0;
				} else if (strcmp(cmd, "refuse") == 0) {
					refusing = 1;
				} else if (strcmp(cmd, "accept") == 0) {
					refusing = 0;
				} else if (strncmp(cmd, "cut-after ", 10) == 0) {
					snprintf(cut_after, sizeof(cut_after), "%s", cmd + 10);
					doomed = -1;
				}
				fprintf(stderr, "tcp_proxy: %s\n", cmd);
				size_t used = (size_t)(nl - cmd) + 1;
				memmove(cmd, nl + 1, cmdlen - used);
				cmdlen -= used;
			}
			if (cmdlen == sizeof(cmd) - 1)
				cmdlen = 0;
		}
		for (int i = 0, k = 2; i < MAXC; i++, k += 2) {
			for (int side = 0; side < 2; side++) {
				short re = pf[k + side].revents;
				if (pf[k + side].fd < 0 || re == 0)
					continue;
				int from = side == 0 ? p[i].a : p[i].b, to = side == 0 ? p[i].b : p[i].a;
				char buf[65536];
				ssize_t r = read(from, buf, sizeof(buf));
				if (r <= 0) {
					close(p[i].a);
					close(p[i].b);
					p[i].a = p[i].b = -1;
					if (doomed == i)
						doomed = -1;
					break;
				}
				if (side == 0 && doomed == i) {
					fprintf(stderr, "tcp_proxy: cut-after: reset\n");
					rst_close(p[i].a);
					rst_close(p[i].b);
					p[i].a = p[i].b = -1;
					doomed = -1;
					break;
				}
				if (side == 0 && cut_after[0] != '\0' &&
				    memmem(buf, (size_t)r, cut_after, strlen(cut_after)) != NULL) {
					doomed = i;
					cut_after[0] = '\0';
				}
				for (ssize_t off = 0; off < r;) {
					ssize_t w = write(to, buf + off, (size_t)(r - off));
					if (w < 0) {
						if (errno == EINTR || errno == EAGAIN)
							continue;
						break;
					}
					off += w;
				}
			}
		}
	}
	if (fifo != NULL)
		unlink(fifo);
	return 0;
}
