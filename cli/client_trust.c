/*
 * client_trust.c: decide whether what listens at the agent's socket is the
 * target's own agent, before a single byte of a request is sent to it
 * (docs/trust.md says what is checked and why).
 *
 * The socket's directory sits in a world-writable /tmp: another user can
 * create it first, or put a symlink there, and listen in it. So the
 * directory is opened without following a symlink and judged on the
 * descriptor (a real directory, owned by the target's user, no access for
 * anybody else), the socket is reached through that descriptor, and once
 * connected the peer's credentials must be the target's pid and user.
 */
#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "pyhot_log.h"

/* What the agent's directory must not allow: any group or other access. */
#define TRUST_DIR_FOREIGN_BITS 077

void pyhot_client_user_desc(unsigned int uid, char *buf, size_t len)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];

	if (getpwuid_r((uid_t)uid, &pw, tmp, sizeof(tmp), &res) == 0 && res)
		snprintf(buf, len, "uid %u (%s)", uid, res->pw_name);
	else
		snprintf(buf, len, "uid %u", uid);
}

int pyhot_client_dir_judge(const struct stat *st, unsigned int uid, char *why,
			   size_t len)
{
	char owner[128], want[128];

	/* Names only for a refusal: each look-up reads /etc/passwd, and
	 * every request judges the directory. */
	if (!S_ISDIR(st->st_mode) || (unsigned int)st->st_uid != uid) {
		pyhot_client_user_desc((unsigned int)st->st_uid, owner, sizeof(owner));
		pyhot_client_user_desc(uid, want, sizeof(want));
	}
	if (!S_ISDIR(st->st_mode)) {
		snprintf(why, len, "is not a directory (owner %s)", owner);
		return -1;
	}
	if ((unsigned int)st->st_uid != uid) {
		snprintf(why, len, "is owned by %s, not by the target's user, %s", owner,
			 want);
		return -1;
	}
	if (st->st_mode & TRUST_DIR_FOREIGN_BITS) {
		snprintf(why, len, "has mode %04o, not 0700: other users could replace "
			 "the agent's socket in it", (unsigned int)(st->st_mode & 07777));
		return -1;
	}
	return 0;
}

int pyhot_client_peer_judge(pid_t peer_pid, unsigned int peer_uid, pid_t pid,
			    unsigned int uid, char *why, size_t len)
{
	char owner[128], want[128];

	if (peer_pid != pid) {
		if (peer_pid <= 0)
			snprintf(why, len, "is served by a process outside our pid "
				 "namespace, not by pid %d", (int)pid);
		else
			snprintf(why, len, "is served by pid %d, not by pid %d", (int)peer_pid,
				 (int)pid);
		return -1;
	}
	if (peer_uid != uid) {
		pyhot_client_user_desc(peer_uid, owner, sizeof(owner));
		pyhot_client_user_desc(uid, want, sizeof(want));
		snprintf(why, len, "is served by %s, not by the target's user, %s", owner,
			 want);
		return -1;
	}
	return 0;
}

/* Record a refusal: nothing was sent, and what to do about it. */
static int refuse(pid_t pid, const char *what, const char *path, const char *why,
		  const char *hint, struct pyhot_err *err)
{
	PYHOT_TRACE("trust", "pid %d: %s %s %s", (int)pid, what, path, why);
	pyhot_err_set(err, PYHOT_ERR_FAILED, EPERM, pid, PYHOT_CLIENT_TRUST_STEP,
		      "%s %s %s: refusing to talk to it", what, path, why);
	pyhot_err_hint(err, "%s; nothing was sent to it and pid %d is unchanged", hint,
		       (int)pid);
	return -PYHOT_ERR_FAILED;
}

/* The directory could not be opened as one: say what is there instead. */
static int dir_open_failed(pid_t pid, const char *full_dir, const char *dir,
			   const char *sock, int e, struct pyhot_err *err)
{
	char why[PATH_MAX + 256], owner[128], link[PATH_MAX], hint[PATH_MAX + 256];
	struct stat st;
	ssize_t n;

	if (e == ENOENT)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, ENOENT, pid, "connect",
				     "connect(%s): %s", sock, strerror(ENOENT));
	if (e == EACCES || e == EPERM) {
		pyhot_err_set(err, PYHOT_ERR_FAILED, e, pid, "connect", "connect(%s): %s",
			      sock, strerror(e));
		pyhot_err_hint(err, "the agent's socket belongs to the target's user: run "
			       "pyhot as that user or as root");
		return -PYHOT_ERR_FAILED;
	}
	if ((e != ELOOP && e != ENOTDIR) || lstat(full_dir, &st) < 0)
		return pyhot_err_set(err, PYHOT_ERR_FAILED, e, pid, "connect", "open(%s): %s",
				     dir, strerror(e));
	pyhot_client_user_desc((unsigned int)st.st_uid, owner, sizeof(owner));
	snprintf(hint, sizeof(hint), "remove it (rm %s, in the target's mount namespace) "
		 "and run the command again", dir);
	if (S_ISLNK(st.st_mode)) {
		n = readlink(full_dir, link, sizeof(link) - 1);
		link[n < 0 ? 0 : n] = '\0';
		snprintf(why, sizeof(why), "is a symlink to '%s' made by %s, not a directory",
			 link, owner);
		return refuse(pid, "socket directory", dir, why, hint, err);
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(why, sizeof(why), "is not a directory (owner %s)", owner);
		return refuse(pid, "socket directory", dir, why, hint, err);
	}
	return pyhot_err_set(err, PYHOT_ERR_FAILED, e, pid, "connect", "open(%s): %s", dir,
			     strerror(e));
}

/* Open the directory of the socket (full_dir on our side, dir as the target
 * sees it) and judge it on the descriptor. */
static int dir_open(pid_t pid, const char *full_dir, const char *dir, const char *sock,
		    unsigned int uid, int *out, struct pyhot_err *err)
{
	char why[512], hint[PATH_MAX + 256];
	struct stat st;
	int fd, e;

	*out = -1;
	fd = open(full_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return dir_open_failed(pid, full_dir, dir, sock, errno, err);
	if (fstat(fd, &st) < 0) {
		e = errno;
		close(fd);
		return pyhot_err_set(err, PYHOT_ERR_FAILED, e, pid, "connect",
				     "fstat(%s): %s", dir, strerror(e));
	}
	if (pyhot_client_dir_judge(&st, uid, why, sizeof(why)) < 0) {
		close(fd);
		snprintf(hint, sizeof(hint), "the agent makes it itself, 0700 and owned by "
			 "the target's user: remove it (rm -r %s, in the target's mount "
			 "namespace) and run the command again", dir);
		return refuse(pid, "socket directory", dir, why, hint, err);
	}
	*out = fd;
	return 0;
}

/* The socket file in the directory: absent (no agent), or a socket of the
 * target's user. */
static int sock_judge(pid_t pid, int dirfd, const char *name, const char *sock,
		      unsigned int uid, struct pyhot_err *err)
{
	char why[512], owner[128], want[128], hint[PATH_MAX + 256];
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		int e = errno;

		return pyhot_err_set(err, PYHOT_ERR_FAILED, e, pid, "connect",
				     "connect(%s): %s", sock, strerror(e));
	}
	if (S_ISSOCK(st.st_mode) && (unsigned int)st.st_uid == uid)
		return 0;
	/* Names only for a refusal (each look-up reads /etc/passwd). */
	snprintf(hint, sizeof(hint), "remove it (rm %s, in the target's mount namespace) "
		 "and run the command again", sock);
	pyhot_client_user_desc((unsigned int)st.st_uid, owner, sizeof(owner));
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(why, sizeof(why), "is not a socket (owner %s)", owner);
		return refuse(pid, "agent socket", sock, why, hint, err);
	}
	pyhot_client_user_desc(uid, want, sizeof(want));
	snprintf(why, sizeof(why), "is owned by %s, not by the target's user, %s",
		 owner, want);
	return refuse(pid, "agent socket", sock, why, hint, err);
}

int pyhot_client_sock_open(pid_t pid, const char *full, const char *sock,
			   unsigned int uid, struct sockaddr_un *sa, socklen_t *salen,
			   int *dirfd, struct pyhot_err *err)
{
	char full_dir[PATH_MAX], dir[PATH_MAX];
	const char *slash = strrchr(full, '/'), *sslash = strrchr(sock, '/');
	int m, r;

	*dirfd = -1;
	if (!slash || (size_t)(slash - full) >= sizeof(full_dir))
		return pyhot_err_set(err, PYHOT_ERR_FAILED, ENAMETOOLONG, pid, "connect",
				     "socket path too long: %s", full);
	memcpy(full_dir, full, (size_t)(slash - full));
	full_dir[slash - full] = '\0';
	if (sslash && (size_t)(sslash - sock) < sizeof(dir)) {
		memcpy(dir, sock, (size_t)(sslash - sock));
		dir[sslash - sock] = '\0';
	} else {
		snprintf(dir, sizeof(dir), "%s", full_dir);
	}
	r = dir_open(pid, full_dir, dir, sock, uid, dirfd, err);
	if (r < 0)
		return r;
	r = sock_judge(pid, *dirfd, slash + 1, sock, uid, err);
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	m = snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", *dirfd,
		     slash + 1);
	if (r == 0 && (m < 0 || (size_t)m >= sizeof(sa->sun_path)))
		r = pyhot_err_set(err, PYHOT_ERR_FAILED, ENAMETOOLONG, pid, "connect",
				  "socket name too long: %s", slash + 1);
	if (r < 0) {
		close(*dirfd);
		*dirfd = -1;
		return r;
	}
	*salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)m + 1);
	return 0;
}

int pyhot_client_peer_check(int fd, pid_t pid, const char *sock, unsigned int uid,
			    struct pyhot_err *err)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	char why[512], hint[PATH_MAX + 160];

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		int e = errno;

		return pyhot_err_set(err, PYHOT_ERR_FAILED, e, pid, PYHOT_CLIENT_TRUST_STEP,
				     "getsockopt(%s, SO_PEERCRED): %s", sock, strerror(e));
	}
	if (pyhot_client_peer_judge(cred.pid, (unsigned int)cred.uid, pid, uid, why,
				    sizeof(why)) == 0)
		return 0;
	if (cred.pid > 0)
		snprintf(hint, sizeof(hint), "see what pid %d is (ps -p %d); if it is not "
			 "pyhot's agent, stop it and remove %s", (int)cred.pid, (int)cred.pid,
			 sock);
	else
		snprintf(hint, sizeof(hint), "if it is not pyhot's agent, stop it and "
			 "remove %s", sock);
	return refuse(pid, "agent socket", sock, why, hint, err);
}
