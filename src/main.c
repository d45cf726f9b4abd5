/* Placeholder host until the Lua host lands (issue 4). */
#include <stdio.h>

int main(void) {
  fputs("bhprobe-lua: the Lua host is not built yet\n", stderr);
  return 1;
}
