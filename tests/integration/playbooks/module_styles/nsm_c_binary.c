/* A binary module: prints its argv and the size of its arguments file as JSON (no shell, no libc I/O beyond stdio). */
#include <stdio.h>

int main(int argc, char **argv) {
    long size = -1;
    if (argc > 1) {
        FILE *fp = fopen(argv[1], "rb");
        if (fp != NULL) {
            fseek(fp, 0, SEEK_END);
            size = ftell(fp);
            fclose(fp);
        }
    }
    printf("{\"changed\": false, \"style\": \"c_binary\", \"argv0\": \"%s\", \"args_path\": \"%s\", \"args_size\": %ld}\n",
           argv[0], argc > 1 ? argv[1] : "", size);
    return 0;
}
