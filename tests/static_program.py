"""A static C program for stages FROM scratch: a fresh Engine needs no base image to build and run them.

/hello                     prints hello!
/hello sleep               sleeps 600 s first (a stage's program that is still running)
/hello wait-gate FILE      sleeps 600 s if FILE says "closed" (a build step that holds until the test opens it)
/hello fill FILE MIB       writes MIB MiB to FILE (an image that takes seconds to measure)
"""

from __future__ import annotations

import subprocess
from pathlib import Path

SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char block[1 << 20];

int main(int argc, char **argv) {
    if (argc > 2 && !strcmp(argv[1], "wait-gate")) {
        char state[8] = "";
        FILE *gate = fopen(argv[2], "r");
        if (gate != NULL && fgets(state, sizeof state, gate) != NULL && !strncmp(state, "closed", 6)) sleep(600);
        return 0;
    }
    if (argc > 3 && !strcmp(argv[1], "fill")) {
        FILE *out = fopen(argv[2], "w");
        for (long i = 0; out != NULL && i < atol(argv[3]); i++) {
            memset(block, (int)(i & 0xff), sizeof block);  /* not all one byte: no layer store may fold it */
            fwrite(block, 1, sizeof block, out);
        }
        return out != NULL && fclose(out) == 0 ? 0 : 1;
    }
    if (argc > 1 && !strcmp(argv[1], "sleep")) sleep(600);
    puts("hello!");
    return 0;
}
"""


def build_static_program(repo: Path, name: str) -> Path:
    """Compile SOURCE statically to `hello/NAME` of `repo`, the stages' build context; its path."""
    source = repo / "hello" / f"{name}.c"
    source.write_text(SOURCE)
    program = repo / "hello" / name
    subprocess.run(["gcc", "-static", "-O2", "-o", str(program), str(source)], check=True)
    return program
