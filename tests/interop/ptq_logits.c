/* ptq_logits.c - the float32 logits of a model on given token ids, from
 * ptqc's CPU reference runtime (the one `ptqc eval` runs: lib/runtime,
 * ptq_forward), for tests/interop/run.sh.  Built by run.sh against a ptqc
 * build directory; never part of make check.
 *
 * usage: ptq_logits MODEL IDS.txt OUT.f32
 *   MODEL    a .ptq bundle, a checkpoint directory or a .gguf file
 *   IDS.txt  one sequence per line, token ids separated by spaces
 *   OUT.f32  float32 LE: for each line its [T, vocab] rows (row t = the
 *            logits after ids[0..t], each sequence from position 0)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/runtime/runtime_cpu.h"

#define MAX_T 4096

/* The ids of one line into ids (at most MAX_T); -1 at end of file. */
static int read_line(FILE *f, int32_t *ids)
{
    char line[65536];
    if (!fgets(line, sizeof line, f)) return -1;
    int n = 0;
    for (char *p = strtok(line, " \t\r\n"); p && n < MAX_T; p = strtok(NULL, " \t\r\n"))
        ids[n++] = (int32_t)strtol(p, NULL, 10);
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: ptq_logits MODEL IDS.txt OUT.f32\n");
        return 2;
    }
    ptq_model_src s;
    ptq_err e = {0, ""};
    if (ptq_model_src_open(&s, argv[1], &e)) {
        fprintf(stderr, "ptq_logits: %s\n", e.msg);
        return e.status ? e.status : 1;
    }
    FILE *in = fopen(argv[2], "r"), *out = fopen(argv[3], "wb");
    if (!in || !out) {
        fprintf(stderr, "ptq_logits: cannot open %s or %s\n", argv[2], argv[3]);
        return 3;
    }
    const ptq_config *c = s.w.cfg;
    static int32_t ids[MAX_T];
    int n, rc = 0;
    while (!rc && (n = read_line(in, ids)) >= 0) {
        if (!n) continue;
        ptq_fwd *f = NULL;
        float *lg = malloc(sizeof(float) * (size_t)n * (size_t)c->vocab);
        rc = !lg ? PTQ_ENOMEM : ptq_fwd_create(&f, c, n, n, &e);
        if (!rc) rc = ptq_forward(f, &s.w, ids, 1, n, lg, &e);
        if (!rc && fwrite(lg, sizeof(float), (size_t)n * c->vocab, out) != (size_t)n * c->vocab)
            rc = ptq_fail(&e, PTQ_EOUTPUT, "%s: short write", argv[3]);
        if (rc) fprintf(stderr, "ptq_logits: %s\n", e.msg);
        ptq_fwd_free(f);
        free(lg);
    }
    fclose(in);
    if (fclose(out) && !rc) rc = PTQ_EOUTPUT;
    ptq_model_src_close(&s);
    return rc;
}
