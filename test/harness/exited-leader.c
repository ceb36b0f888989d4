/*
 * A process whose main thread has exited while another thread runs on, as a program that calls
 * pthread_exit() in main(): the kernel keeps the thread-group leader as a zombie (state Z,
 * "Threads: 2"), and /proc/<pid>/cwd, root, exe, fd and maps show nothing of what the process
 * holds; /proc/<pid>/task/<tid>/ of the live thread still does.
 *
 * Usage: exited-leader DIR [FILE]: works in DIR, holds FILE open, and prints its pid once the main
 * thread is about to exit. The thread left ends the process after 300 s.
 *
 * Build: gcc -O2 -o exited-leader exited-leader.c -lpthread
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static void *run_on(void *arg) {
  (void)arg;
  sleep(300);
  return NULL;
}

int main(int argc, char **argv) {
  pthread_t thread;
  if (argc < 2 || chdir(argv[1]) != 0) return 2;
  if (argc > 2 && open(argv[2], O_RDONLY) < 0) return 2;
  if (pthread_create(&thread, NULL, run_on, NULL) != 0) return 2;
  printf("%d\n", (int)getpid());
  fflush(stdout);
  pthread_exit(NULL);
}
