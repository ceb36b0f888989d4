/*
 * LD_PRELOAD shim: loses one wakeup of libuv's thread pool, as glibc's condition variables can
 * (sourceware bug 25847, fixed in glibc 2.41): work sits in the pool's queue while every pool
 * thread sleeps, and its callback never runs unless more work is posted.
 *
 * The pool's condition variable is the one on which UV_THREADPOOL_SIZE distinct threads have
 * waited (set it above V8's platform pool of 4 threads, so no other one qualifies). From then on
 * signals on it are counted, and the LOSE_WAKEUP_AT-th one is dropped (1 = the first). With
 * LOSE_WAKEUP_VERBOSE set, the count is printed when the process exits (after libuv has joined its
 * pool threads), so a test can aim at the last signals of a run.
 * Build: gcc -shared -fPIC -O2 -o lose-wakeup.so lose-wakeup.c -ldl -lpthread
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_CONDS 64
#define MAX_WAITERS 64

struct seen {
  pthread_cond_t *cond;
  int waiters;
  pid_t tids[MAX_WAITERS];
};

static struct seen seen[MAX_CONDS];
static pthread_mutex_t table = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t *pool;
static long signals;
static int (*real_wait)(pthread_cond_t *, pthread_mutex_t *);
static int (*real_signal)(pthread_cond_t *);

static int pool_size(void) {
  const char *v = getenv("UV_THREADPOOL_SIZE");
  return v ? atoi(v) : 4;
}

static void note_waiter(pthread_cond_t *cond) {
  pid_t tid = (pid_t)syscall(SYS_gettid);
  pthread_mutex_lock(&table);
  if (pool == NULL) {
    struct seen *slot = NULL;
    for (int i = 0; i < MAX_CONDS; i++) {
      if (seen[i].cond == cond) { slot = &seen[i]; break; }
      if (seen[i].cond == NULL) { seen[i].cond = cond; slot = &seen[i]; break; }
    }
    if (slot != NULL) {
      int known = 0;
      for (int i = 0; i < slot->waiters; i++) known |= slot->tids[i] == tid;
      if (!known && slot->waiters < MAX_WAITERS) slot->tids[slot->waiters++] = tid;
      if (slot->waiters >= pool_size()) {
        pool = cond;
        if (getenv("LOSE_WAKEUP_VERBOSE")) fprintf(stderr, "lose-wakeup: pool found\n");
      }
    }
  }
  pthread_mutex_unlock(&table);
}

int pthread_cond_wait(pthread_cond_t *cond, pthread_mutex_t *mutex) {
  if (real_wait == NULL) real_wait = (int (*)(pthread_cond_t *, pthread_mutex_t *))dlsym(RTLD_NEXT, "pthread_cond_wait");
  note_waiter(cond);
  return real_wait(cond, mutex);
}

int pthread_cond_signal(pthread_cond_t *cond) {
  if (real_signal == NULL) real_signal = (int (*)(pthread_cond_t *))dlsym(RTLD_NEXT, "pthread_cond_signal");
  if (cond == pool) {
    const char *at = getenv("LOSE_WAKEUP_AT");
    long n = __atomic_add_fetch(&signals, 1, __ATOMIC_SEQ_CST);
    if (at != NULL && n == atol(at)) {
      if (getenv("LOSE_WAKEUP_VERBOSE")) fprintf(stderr, "lose-wakeup: dropped signal %ld\n", n);
      return 0;
    }
  }
  return real_signal(cond);
}

__attribute__((destructor)) static void report(void) {
  if (getenv("LOSE_WAKEUP_VERBOSE")) fprintf(stderr, "lose-wakeup: %ld signals\n", __atomic_load_n(&signals, __ATOMIC_SEQ_CST));
}
