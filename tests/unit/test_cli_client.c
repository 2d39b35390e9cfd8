/* test_cli_client.c: the agent client against a local socket server
 * (cli/client.c): a round trip, a path longer than sun_path, no listener,
 * a server that never answers, a malformed answer; two requests under way
 * from one thread (pyhot_client_start()), answered out of order and in
 * pieces, and one whose answer stops after its length; a second request on
 * a connection kept open, and after the agent closed it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json.h>

#include "client.h"
#include "pyhot_proto.h"

static char dir[512], full[600];

struct server {
	int fd;
	const char *answer;   /* NULL: accept, read, never answer */
	int delay_ms;         /* before the answer */
	int pieces;           /* the length, then the body after another delay_ms */
	int no_body;          /* the length only, then silence */
	int keep;             /* a second request on the same connection */
	int accepts;          /* connections to serve, one request each (0: 1) */
	int conns;            /* connections accepted */
	int closed;           /* > 0: a byte written there after each close */
	char got[256];
	size_t gotlen;
};

static void serve_one(struct server *s, int c);

static void *serve(void *arg)
{
	struct server *s = arg;
	int i, c;

	for (i = 0; i < (s->accepts ? s->accepts : 1); i++) {
		c = accept(s->fd, NULL, NULL);
		if (c < 0)
			return NULL;
		s->conns++;
		serve_one(s, c);
		if (s->keep)
			serve_one(s, c);
		close(c);
		if (s->closed > 0 && write(s->closed, "c", 1) != 1)
			return NULL;
	}
	return NULL;
}

static void serve_one(struct server *s, int c)
{
	unsigned char hdr[4];
	uint32_t n;

	s->gotlen = 0;
	if (recv(c, hdr, 4, MSG_WAITALL) == 4) {
		n = pyhot_frame_len_decode(hdr);
		if (n <= sizeof(s->got) && recv(c, s->got, n, MSG_WAITALL) == (ssize_t)n)
			s->gotlen = n;
	}
	if (s->answer) {
		usleep((useconds_t)s->delay_ms * 1000);
		pyhot_frame_len_encode(hdr, (uint32_t)strlen(s->answer));
		send(c, hdr, 4, 0);
		if (s->pieces)
			usleep((useconds_t)s->delay_ms * 1000);
		if (s->no_body)
			usleep(300 * 1000);
		else
			send(c, s->answer, strlen(s->answer), 0);
	} else {
		usleep(300 * 1000);
	}
}

/* Bind a listening socket named name in dir (longer than sun_path):
 * chdir + relative. */
static int listen_at(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char cwd[1024];
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(dir), 0);
	unlink(name);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", name);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(chdir(cwd), 0);
	return fd;
}

static int listen_long(void)
{
	return listen_at("a.sock");
}

static int setup(void **state)
{
	size_t i;

	snprintf(dir, sizeof(dir), "/tmp/pyhot-test-client-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	/* Make the path longer than sun_path (108). */
	for (i = 0; i < 4; i++) {
		strcat(dir, "/a-rather-long-directory-name");
		if (mkdir(dir, 0700) < 0)
			return -1;
	}
	snprintf(full, sizeof(full), "%s/a.sock", dir);
	assert_true(strlen(full) > sizeof(((struct sockaddr_un *)0)->sun_path));
	return 0;
}

static int teardown(void **state)
{
	char cmd[700], *p = strstr(dir, "/a-rather");

	*p = '\0';
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_round_trip_long_path(void **state)
{
	struct server s = { .answer = "{\"proto\":1,\"ok\":true,\"pid\":7}" };
	struct pyhot_client_req req;
	struct json_object *resp = NULL, *v;
	struct pyhot_err e;
	pthread_t th;

	s.fd = listen_long();
	pthread_create(&th, NULL, serve, &s);
	pyhot_client_req_init(&req, "ping");
	assert_int_equal(pyhot_client_req_add(&req, "k", "v"), 0);
	pyhot_err_init(&e);
	assert_int_equal(pyhot_client_call_at(getpid(), full, "/x.sock", &req, 2000, &resp, &e), 0);
	pthread_join(th, NULL);
	close(s.fd);
	assert_non_null(resp);
	assert_true(json_object_object_get_ex(resp, "pid", &v));
	assert_int_equal(json_object_get_int(v), 7);
	assert_int_equal(s.gotlen, 9);
	assert_memory_equal(s.got, "ping\0k\0v\0", 9);
	assert_int_equal(pyhot_client_resp_check(resp, 1, "ping", &e), 0);
	json_object_put(resp);
}

static void test_no_listener(void **state)
{
	struct pyhot_client_req req;
	struct json_object *resp = NULL;
	struct pyhot_err e;
	char p[700];

	pyhot_client_req_init(&req, "ping");
	snprintf(p, sizeof(p), "%s/none.sock", dir);
	pyhot_err_init(&e);
	assert_int_equal(pyhot_client_call_at(getpid(), p, "/none.sock", &req, 500, &resp, &e),
			 -PYHOT_ERR_FAILED);
	assert_true(pyhot_client_no_agent(&e));
	assert_int_equal(e.sys_errno, ENOENT);
	assert_null(resp);
	/* Stale socket file, nobody listening: refused, also "no agent". */
	{
		int fd = listen_long();

		close(fd);
		pyhot_err_init(&e);
		assert_int_equal(pyhot_client_call_at(getpid(), full, "/a.sock", &req, 500, &resp, &e),
				 -PYHOT_ERR_FAILED);
		assert_true(pyhot_client_no_agent(&e));
		assert_int_equal(e.sys_errno, ECONNREFUSED);
	}
}

static void test_no_answer_times_out(void **state)
{
	struct server s = { .answer = NULL };
	struct pyhot_client_req req;
	struct json_object *resp = NULL;
	struct pyhot_err e;
	pthread_t th;

	s.fd = listen_long();
	pthread_create(&th, NULL, serve, &s);
	pyhot_client_req_init(&req, "status");
	pyhot_err_init(&e);
	assert_int_equal(pyhot_client_call_at(getpid(), full, "/a.sock", &req, 100, &resp, &e),
			 -PYHOT_ERR_TIMEOUT);
	assert_non_null(strstr(e.msg, "no answer from the agent"));
	assert_false(pyhot_client_no_agent(&e));
	pthread_join(th, NULL);
	close(s.fd);
}

static void test_malformed_answer(void **state)
{
	struct server s = { .answer = "not json" };
	struct pyhot_client_req req;
	struct json_object *resp = NULL;
	struct pyhot_err e;
	pthread_t th;

	s.fd = listen_long();
	pthread_create(&th, NULL, serve, &s);
	pyhot_client_req_init(&req, "status");
	pyhot_err_init(&e);
	assert_int_equal(pyhot_client_call_at(getpid(), full, "/a.sock", &req, 2000, &resp, &e),
			 -PYHOT_ERR_FAILED);
	assert_non_null(strstr(e.msg, "not a JSON object"));
	pthread_join(th, NULL);
	close(s.fd);
}

/* Wait for every connection in c[0..n) until it is answered or failed;
 * done[i] records in which order. */
static void wait_all(struct pyhot_client_conn *c, int *r, struct json_object **resp,
		     struct pyhot_err *e, size_t n, int *order)
{
	struct pollfd pf[4];
	size_t i, left = n;
	int next = 0, tmo;

	while (left) {
		tmo = -1;
		for (i = 0; i < n; i++) {
			pf[i].fd = r[i] == 0 ? c[i].fd : -1;
			pf[i].events = pyhot_client_conn_events(&c[i]);
			pf[i].revents = 0;
			if (r[i] == 0 && (tmo < 0 || pyhot_client_conn_remaining(&c[i]) < tmo))
				tmo = pyhot_client_conn_remaining(&c[i]);
		}
		assert_true(poll(pf, n, tmo) >= 0);
		for (i = 0; i < n; i++) {
			if (r[i] != 0)
				continue;
			r[i] = pyhot_client_conn_continue(&c[i], &resp[i], &e[i]);
			if (r[i] != 0) {
				order[i] = next++;
				left--;
			}
		}
	}
}

static void test_two_requests_under_way(void **state)
{
	struct server s[2] = {
		{ .answer = "{\"proto\":1,\"ok\":true,\"n\":0}", .delay_ms = 150, .pieces = 1 },
		{ .answer = "{\"proto\":1,\"ok\":true,\"n\":1}" },
	};
	const char *names[2] = { "a.sock", "b.sock" };
	struct pyhot_client_conn c[2];
	struct json_object *resp[2] = { NULL, NULL }, *v;
	struct pyhot_client_req req;
	struct pyhot_err e[2];
	char p[700];
	pthread_t th[2];
	int r[2], order[2];
	size_t i;

	pyhot_client_req_init(&req, "ping");
	for (i = 0; i < 2; i++) {
		s[i].fd = listen_at(names[i]);
		pthread_create(&th[i], NULL, serve, &s[i]);
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		pyhot_err_init(&e[i]);
		r[i] = pyhot_client_start(getpid(), p, names[i], &req, 3000, &c[i], &e[i]);
		assert_int_equal(r[i], 0);
	}
	wait_all(c, r, resp, e, 2, order);
	for (i = 0; i < 2; i++) {
		assert_int_equal(r[i], 1);
		assert_true(json_object_object_get_ex(resp[i], "n", &v));
		assert_int_equal(json_object_get_int(v), (int)i);
		json_object_put(resp[i]);
		pyhot_client_conn_close(&c[i]);
		pthread_join(th[i], NULL);
		close(s[i].fd);
		assert_int_equal(s[i].gotlen, 5);
	}
	/* The slow one was started first and answered last. */
	assert_int_equal(order[0], 1);
	assert_int_equal(order[1], 0);
}

static void test_answer_cut_after_its_length(void **state)
{
	struct server s = { .answer = "{\"proto\":1,\"ok\":true}", .no_body = 1 };
	struct pyhot_client_conn c;
	struct json_object *resp = NULL;
	struct pyhot_client_req req;
	struct pyhot_err e;
	pthread_t th;
	int r, order;

	s.fd = listen_long();
	pthread_create(&th, NULL, serve, &s);
	pyhot_client_req_init(&req, "status");
	pyhot_err_init(&e);
	r = pyhot_client_start(getpid(), full, "/a.sock", &req, 100, &c, &e);
	assert_int_equal(r, 0);
	wait_all(&c, &r, &resp, &e, 1, &order);
	assert_int_equal(r, -PYHOT_ERR_TIMEOUT);
	assert_string_equal(e.step, "receive");
	assert_non_null(strstr(e.msg, "no answer from the agent"));
	assert_null(resp);
	pyhot_client_conn_close(&c);
	pthread_join(th, NULL);
	close(s.fd);
}

/* A "refresh" over kept (pyhot_client_start_on()), answered; kept holds
 * nothing after. */
static void refresh_on(struct pyhot_client_kept *kept)
{
	struct pyhot_client_conn c;
	struct json_object *resp = NULL;
	struct pyhot_client_req req;
	struct pyhot_err e;
	int r, order;

	pyhot_client_req_init(&req, "refresh");
	pyhot_err_init(&e);
	r = pyhot_client_start_on(kept, getpid(), full, "/a.sock", &req, 2000, &c, &e);
	assert_int_equal(r, 0);
	assert_false(kept->held);
	wait_all(&c, &r, &resp, &e, 1, &order);
	assert_int_equal(r, 1);
	json_object_put(resp);
	pyhot_client_conn_close(&c);
}

/* Two requests, the first asking to keep its connection: the second goes
 * over it when the agent kept it ("kept" in its answer), and over a new
 * one when it closed it (an older agent, which says nothing). */
static void second_request(int keep)
{
	struct server s = { .answer = keep ? "{\"proto\":1,\"ok\":true,\"kept\":true}"
					   : "{\"proto\":1,\"ok\":true}",
			    .keep = keep, .accepts = keep ? 1 : 2 };
	struct pyhot_client_kept kept = { 0 };
	struct pyhot_client_conn c;
	struct json_object *resp = NULL;
	struct pyhot_client_req req;
	struct pyhot_err e;
	pthread_t th;
	int r, order, closed[2];
	char b;

	assert_int_equal(pipe(closed), 0);
	s.closed = closed[1];
	s.fd = listen_long();
	pthread_create(&th, NULL, serve, &s);
	pyhot_client_req_init(&req, "refresh");
	assert_int_equal(pyhot_client_req_add(&req, "keep", "1"), 0);
	pyhot_err_init(&e);
	r = pyhot_client_start(getpid(), full, "/a.sock", &req, 2000, &c, &e);
	assert_int_equal(r, 0);
	/* Not answered yet: nothing to keep. */
	pyhot_client_keep(&c, NULL, &kept);
	assert_false(kept.held);
	wait_all(&c, &r, &resp, &e, 1, &order);
	assert_int_equal(r, 1);
	pyhot_client_keep(&c, resp, &kept);
	json_object_put(resp);
	pyhot_client_conn_close(&c);
	/* An older agent: nothing kept; it closed (we wait until it did). */
	assert_int_equal(kept.held, keep);
	if (!keep)
		assert_int_equal(read(closed[0], &b, 1), 1);
	refresh_on(&kept);
	pthread_join(th, NULL);
	close(s.fd);
	close(closed[0]);
	close(closed[1]);
	assert_int_equal(s.conns, keep ? 1 : 2);
	assert_memory_equal(s.got, "refresh\0", 8);
}

/* A request over a kept connection whose far end no longer reads (what
 * the agent does at its idle limit: its reading side shut), kept at `at`
 * (ms, CLOCK_MONOTONIC): it goes over a new connection to the server,
 * read there once. */
static void kept_unread(long long at)
{
	struct server s = { .answer = "{\"proto\":1,\"ok\":true,\"kept\":true}" };
	struct pyhot_client_kept kept = { 0 };
	pthread_t th;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	shutdown(sv[1], SHUT_RD);
	kept.held = 1;
	kept.fd = sv[0];
	kept.at = at;
	s.fd = listen_long();
	pthread_create(&th, NULL, serve, &s);
	refresh_on(&kept);
	pthread_join(th, NULL);
	close(s.fd);
	close(sv[1]);
	assert_int_equal(s.conns, 1);
	assert_memory_equal(s.got, "refresh\0", 8);
}

static void test_second_request_after_the_idle_limit(void **state)
{
	struct timespec now;

	/* Too old: a new connection, without even a look at it. */
	kept_unread(0);
	/* Young, but refused (EPIPE): a new connection. */
	clock_gettime(CLOCK_MONOTONIC, &now);
	kept_unread((long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
}

static void test_second_request_on_the_kept_connection(void **state)
{
	second_request(1);
}

static void test_second_request_after_the_agent_closed(void **state)
{
	second_request(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_long_path),
		cmocka_unit_test(test_no_listener),
		cmocka_unit_test(test_no_answer_times_out),
		cmocka_unit_test(test_malformed_answer),
		cmocka_unit_test(test_two_requests_under_way),
		cmocka_unit_test(test_answer_cut_after_its_length),
		cmocka_unit_test(test_second_request_on_the_kept_connection),
		cmocka_unit_test(test_second_request_after_the_agent_closed),
		cmocka_unit_test(test_second_request_after_the_idle_limit),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
