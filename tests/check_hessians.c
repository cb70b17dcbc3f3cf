/* check_hessians.c - ptqc compile --hessians sequential|layer, and GPTQ's
 * defaults chosen on SmolLM2 (ptqc-compile(1)): layer Hessians and --mse.
 *
 * What follows from the definitions (no golden numbers from the code under
 * test):
 *  - q/k/v read the layer's input in both modes, so layer 0's q/k/v (whose
 *    input is the embedding) and its int8 KV scales (from the quantized
 *    q/k/v) are byte-identical in both; o_proj's Hessian differs (the
 *    attention of the unquantized against the quantized q/k/v), so its
 *    weights do at 3 bits.
 *  - A linear whose earlier linears in the layer are all kept dense reads
 *    the unquantized layer in both modes: with o_proj alone quantized, or
 *    down_proj alone, every payload of the two bundles is the same, in every
 *    layer (the quantized outputs propagate alike).
 *  - --hessians layer gives the same bytes for --threads 1 and 3.
 *  - The manifest's settings say "hessians": "layer" (absent: sequential);
 *    the default is layer for gptq, sequential for the other methods (rtn:
 *    the Hessians feed its report only; awq+gptq: not measured).
 *  - A bad value: exit status 2, one message naming the flag.
 */
#include <check.h>
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "formats/bundle.h"
#include "tests/testutil.h"

#define FLAGS "--method gptq --bits 3 --group 32 --nsamples 16 --seqlen 64 --seed 1 --quiet"

static char *model(void) { return tu_src("examples/stories260k"); }

/* The payloads of tensor nm of an open bundle, offsets left out (cJSON_Delete it). */
static cJSON *payloads(const ptq_bundle *b, const char *nm)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(b->manifest, "tensors")) {
        const cJSON *n = cJSON_GetObjectItem(t, "name");
        if (!cJSON_IsString(n) || strcmp(n->valuestring, nm)) continue;
        cJSON *p = cJSON_Duplicate(cJSON_GetObjectItem(t, "payloads"), 1), *m;
        ck_assert(p != NULL);
        cJSON_ArrayForEach(m, p) cJSON_DeleteItemFromObject(m, "offset");
        return p;
    }
    ck_abort_msg("%s: no such tensor", nm);
    return NULL;
}

/* Whether tensor nm has the same payloads in a and b. */
static int same_tensor(const ptq_bundle *a, const ptq_bundle *b, const char *nm)
{
    cJSON *x = payloads(a, nm), *y = payloads(b, nm);
    int same = cJSON_Compare(x, y, 1);
    cJSON_Delete(x);
    cJSON_Delete(y);
    return same;
}

static void open_b(ptq_bundle *b, const char *path)
{
    ptq_err e;
    ck_assert_msg(ptq_bundle_open(b, path, 1, &e) == 0, "%s", e.msg);
}

static const char *hessians_setting(const ptq_bundle *b)
{
    const cJSON *q = cJSON_GetObjectItem(b->manifest, "quantization");
    const cJSON *h = cJSON_GetObjectItem(q, "hessians");
    return cJSON_IsString(h) ? h->valuestring : NULL;
}

START_TEST(qkv_alike_o_differs)
{
    char *dir = tu_tmpdir(), *m = model();
    char *s = tu_fmt("%s/s.ptq", dir), *l = tu_fmt("%s/l.ptq", dir);
    tu_compile_ok(m, s, NULL, FLAGS " --kv-cache int8 --hessians sequential", 0);
    tu_compile_ok(m, l, NULL, FLAGS " --kv-cache int8 --hessians layer", 1);
    ptq_bundle a, b;
    open_b(&a, s);
    open_b(&b, l);
    const char *qkv[] = {"q_proj", "k_proj", "v_proj"};
    for (int i = 0; i < 3; i++) {
        char *nm = tu_fmt("model.layers.0.self_attn.%s.weight", qkv[i]);
        ck_assert_msg(same_tensor(&a, &b, nm), "%s differs between the modes", nm);
        free(nm);
    }
    ck_assert(same_tensor(&a, &b, "model.layers.0.self_attn.kv_scale"));
    ck_assert_msg(!same_tensor(&a, &b, "model.layers.0.self_attn.o_proj.weight"),
                  "o_proj is the same with its Hessian from the unquantized q/k/v");
    ck_assert_ptr_null(hessians_setting(&a));
    ck_assert_str_eq(hessians_setting(&b), "layer");
    ptq_bundle_close(&a);
    ptq_bundle_close(&b);
    tu_rmrf(dir);
    free(dir), free(m), free(s), free(l);
}
END_TEST

/* Compiles with and without --hessians layer, flags `keep` (--skip ...):
 * every payload the same, and `quantized` (a linear's name) in the bundle
 * quantized in every layer. */
static void modes_alike(const char *keep, const char *quantized)
{
    char *dir = tu_tmpdir(), *m = model();
    char *s = tu_fmt("%s/s.ptq", dir), *l = tu_fmt("%s/l.ptq", dir);
    char *f0 = tu_fmt("%s %s --hessians sequential", FLAGS, keep);
    char *f1 = tu_fmt("%s %s --hessians layer", FLAGS, keep);
    tu_compile_ok(m, s, NULL, f0, 0);
    tu_compile_ok(m, l, NULL, f1, 0);
    ptq_bundle a, b;
    open_b(&a, s);
    open_b(&b, l);
    int n = ptq_bundle_ntensors(&a), nq = 0;
    ck_assert_int_eq(n, ptq_bundle_ntensors(&b));
    for (int i = 0; i < n; i++) {
        ptq_bundle_tinfo t;
        ptq_bundle_tensor_info(&a, i, &t);
        ck_assert_msg(same_tensor(&a, &b, t.name), "%s differs between the modes", t.name);
        nq += strstr(t.name, quantized) && !strcmp(t.method, "gptq");
    }
    ck_assert_int_eq(nq, 5); /* stories260k: 5 layers */
    ptq_bundle_close(&a);
    ptq_bundle_close(&b);
    tu_rmrf(dir);
    free(dir), free(m), free(s), free(l), free(f0), free(f1);
}

/* o_proj alone quantized: its input is the unquantized attention in both
 * modes, in every layer (the layers' outputs then agree too). */
START_TEST(o_alone_same_bundle)
{
    modes_alike("--skip '*.q_proj' --skip '*.k_proj' --skip '*.v_proj' --skip '*.gate_proj'"
                " --skip '*.up_proj' --skip '*.down_proj'", "o_proj");
}
END_TEST

/* down_proj alone quantized: the layer before it is the unquantized one in
 * both modes. */
START_TEST(down_alone_same_bundle)
{
    modes_alike("--skip '*.self_attn.*' --skip '*.gate_proj' --skip '*.up_proj'", "down_proj");
}
END_TEST

START_TEST(threads_invariant)
{
    char *dir = tu_tmpdir(), *m = model();
    char *d1 = tu_fmt("%s/t1", dir), *d3 = tu_fmt("%s/t3", dir);
    char *a = tu_fmt("%s/b.ptq", d1), *b = tu_fmt("%s/b.ptq", d3);
    char *mk = tu_fmt("mkdir -p '%s' '%s'", d1, d3);
    ck_assert_int_eq(system(mk), 0);
    /* 8 chunks of 2 samples: 3 workers share them unevenly */
    tu_compile_ok(m, a, NULL, FLAGS " --hessians layer --chunk-tokens 128 --threads 1", 0);
    tu_compile_ok(m, b, NULL, FLAGS " --hessians layer --chunk-tokens 128 --threads 3", 0);
    size_t na, nb;
    char *x = tu_read_file(a, &na), *y = tu_read_file(b, &nb);
    ck_assert(x && y);
    ck_assert_msg(na == nb && !memcmp(x, y, na), "--threads 1 and 3 differ");
    free(x), free(y);
    tu_rmrf(dir);
    free(dir), free(m), free(d1), free(d3), free(a), free(b), free(mk);
}
END_TEST

START_TEST(defaults)
{
    char *dir = tu_tmpdir(), *m = model();
    char *g = tu_fmt("%s/g.ptq", dir), *l = tu_fmt("%s/l.ptq", dir), *r = tu_fmt("%s/r.ptq", dir);
    tu_compile_ok(m, g, NULL, FLAGS, 0);
    tu_compile_ok(m, l, NULL, FLAGS " --hessians layer", 0);
    tu_compile_ok(m, r, NULL, "--method rtn --bits 3 --group 32 --nsamples 4 --seqlen 64 --quiet", 0);
    ptq_bundle a, b, c;
    open_b(&a, g);
    open_b(&b, l);
    open_b(&c, r);
    ck_assert_str_eq(hessians_setting(&a), "layer");
    ck_assert_ptr_null(hessians_setting(&c));
    int n = ptq_bundle_ntensors(&a);
    for (int i = 0; i < n; i++) {
        ptq_bundle_tinfo t;
        ptq_bundle_tensor_info(&a, i, &t);
        ck_assert_msg(same_tensor(&a, &b, t.name), "%s: the default is not layer", t.name);
    }
    ptq_bundle_close(&a);
    ptq_bundle_close(&b);
    ptq_bundle_close(&c);
    tu_rmrf(dir);
    free(dir), free(m), free(g), free(l), free(r);
}
END_TEST

static int mse_setting(const ptq_bundle *b)
{
    const cJSON *q = cJSON_GetObjectItem(b->manifest, "quantization");
    const cJSON *v = cJSON_GetObjectItem(q, "mse");
    ck_assert(cJSON_IsBool(v));
    return cJSON_IsTrue(v);
}

/* --mse is gptq's default (--no-mse turns it off), min-max elsewhere; a
 * recipe's awq linears on a gptq run are not refused for it (AWQ searches
 * its own clipping: only a given --mse is an error there). */
START_TEST(mse_defaults)
{
    char *dir = tu_tmpdir(), *m = model();
    char *d = tu_fmt("%s/d.ptq", dir), *y = tu_fmt("%s/y.ptq", dir), *n = tu_fmt("%s/n.ptq", dir);
    char *r = tu_fmt("%s/r.ptq", dir), *x = tu_fmt("%s/x.ptq", dir), *rj = tu_fmt("%s/r.json", dir);
    tu_compile_ok(m, d, NULL, FLAGS, 0);
    tu_compile_ok(m, y, NULL, FLAGS " --mse", 0);
    tu_compile_ok(m, n, NULL, FLAGS " --no-mse", 0);
    tu_compile_ok(m, r, NULL, "--method rtn --bits 3 --group 32 --nsamples 4 --seqlen 64 --quiet", 0);
    ptq_bundle bd, by, bn, br;
    open_b(&bd, d), open_b(&by, y), open_b(&bn, n), open_b(&br, r);
    ck_assert(mse_setting(&bd) && mse_setting(&by));
    ck_assert(!mse_setting(&bn) && !mse_setting(&br));
    const char *w = "model.layers.0.self_attn.q_proj.weight";
    ck_assert_msg(same_tensor(&bd, &by, w), "the default is not --mse");
    ck_assert_msg(!same_tensor(&bd, &bn, w), "--no-mse changed nothing");
    ptq_bundle_close(&bd), ptq_bundle_close(&by), ptq_bundle_close(&bn), ptq_bundle_close(&br);
    const char *rec = "{\"overrides\": [{\"match\": \"model.layers.0.*\", \"method\": \"awq\"}]}";
    ck_assert_int_eq(tu_write_file(rj, rec, strlen(rec)), 0);
    char *fl = tu_fmt("%s --recipe '%s'", FLAGS, rj);
    tu_compile_ok(m, x, NULL, fl, 0);
    tu_rmrf(dir);
    free(dir), free(m), free(d), free(y), free(n), free(r), free(x), free(rj), free(fl);
}
END_TEST

START_TEST(bad_value)
{
    char *dir = tu_tmpdir(), *m = model();
    char *out = tu_fmt("%s/x.ptq", dir);
    char *args = tu_fmt("compile '%s' -o '%s' --hessians both", m, out);
    tu_expect_fail(args, 2, "--hessians", out);
    tu_rmrf(dir);
    free(dir), free(m), free(out), free(args);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hessians");
    TCase *tc = tcase_create("hessians");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, qkv_alike_o_differs);
    tcase_add_test(tc, o_alone_same_bundle);
    tcase_add_test(tc, down_alone_same_bundle);
    tcase_add_test(tc, threads_invariant);
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, mse_defaults);
    tcase_add_test(tc, bad_value);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
