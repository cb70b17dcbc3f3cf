/* check_safetensors.c - the safetensors reader and writer, and checkpoint
 * directories (formats/safetensors.c, safetensors_write.c, checkpoint.c).
 *
 * Bad files are built byte by byte here (8-byte length + JSON + data), so
 * each test controls exactly one defect; the real checkpoints are the two
 * shared models, checked against the shapes of shared/README.md.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/checkpoint.h"
#include "formats/safetensors.h"
#include "lib/base/half.h"
#include "tests/testutil.h"

/* ------------------------------------------------------------ helpers */

/* Write dir/name = u64le(len(header)) + header + ndata bytes (0..255 ramp). */
static char *raw_file(const char *dir, const char *name, const char *header, uint64_t hlen_field,
                      size_t ndata)
{
    size_t hl = strlen(header);
    size_t total = 8 + hl + ndata;
    uint8_t *buf = malloc(total);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(hlen_field >> (8 * i));
    memcpy(buf + 8, header, hl);
    for (size_t i = 0; i < ndata; i++) buf[8 + hl + i] = (uint8_t)i;
    char *path = tu_fmt("%s/%s", dir, name);
    ck_assert_int_eq(tu_write_file(path, buf, total), 0);
    free(buf);
    return path;
}

/* Open a file whose header is `header` (its true length) followed by ndata
 * bytes and expect failure with status and a message naming the file and
 * containing `what`. */
static void expect_bad(const char *header, size_t ndata, int status, const char *what)
{
    char *dir = tu_tmpdir();
    char *path = raw_file(dir, "bad.safetensors", header, strlen(header), ndata);
    ptq_safetensors st;
    ptq_err e = {0};
    int rc = ptq_st_open(&st, path, &e);
    ck_assert_msg(rc == status, "status %d, wanted %d: %s", rc, status, e.msg);
    ck_assert_msg(strstr(e.msg, path) != NULL, "message does not name the file: %s", e.msg);
    ck_assert_msg(strstr(e.msg, what) != NULL, "message lacks '%s': %s", what, e.msg);
    tu_rmrf(dir);
    free(dir);
    free(path);
}

/* ------------------------------------------------------------ bad files */

START_TEST(truncated_file)
{
    /* a real checkpoint cut in the middle of its data */
    char *src = tu_shared("models/stories260k/model.safetensors");
    size_t n;
    char *bytes = tu_read_file(src, &n);
    ck_assert_ptr_nonnull(bytes);
    char *dir = tu_tmpdir();
    char *path = tu_fmt("%s/model.safetensors", dir);
    ck_assert_int_eq(tu_write_file(path, bytes, n / 2), 0);
    ptq_safetensors st;
    ptq_err e = {0};
    ck_assert_int_eq(ptq_st_open(&st, path, &e), PTQ_EFORMAT);
    ck_assert_msg(strstr(e.msg, path) && strstr(e.msg, "out of range"), "%s", e.msg);
    /* and shorter than the length field itself */
    ck_assert_int_eq(tu_write_file(path, bytes, 5), 0);
    ck_assert_int_eq(ptq_st_open(&st, path, &e), PTQ_EFORMAT);
    ck_assert_msg(strstr(e.msg, path) && strstr(e.msg, "truncated"), "%s", e.msg);
    /* empty file */
    ck_assert_int_eq(tu_write_file(path, bytes, 0), 0);
    ck_assert_int_eq(ptq_st_open(&st, path, &e), PTQ_EFORMAT);
    ck_assert_msg(strstr(e.msg, path) && strstr(e.msg, "truncated"), "%s", e.msg);
    tu_rmrf(dir);
    free(dir);
    free(path);
    free(bytes);
    free(src);
}
END_TEST

START_TEST(header_length_past_end)
{
    char *dir = tu_tmpdir();
    const char *h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    char *path = raw_file(dir, "x.safetensors", h, strlen(h) + 100, 4);
    ptq_safetensors st;
    ptq_err e = {0};
    ck_assert_int_eq(ptq_st_open(&st, path, &e), PTQ_EFORMAT);
    ck_assert_msg(strstr(e.msg, path) && strstr(e.msg, "past the end"), "%s", e.msg);
    tu_rmrf(dir);
    free(dir);
    free(path);
}
END_TEST

START_TEST(header_length_absurd)
{
    char *dir = tu_tmpdir();
    char *path = raw_file(dir, "x.safetensors", "{}", (uint64_t)1 << 62, 0);
    ptq_safetensors st;
    ptq_err e = {0};
    ck_assert_int_eq(ptq_st_open(&st, path, &e), PTQ_EFORMAT);
    ck_assert_msg(strstr(e.msg, path) && strstr(e.msg, "limit"), "%s", e.msg);
    /* just over the limit, in a file that is large enough is also refused */
    free(path);
    path = raw_file(dir, "y.safetensors", "{}", PTQ_ST_MAX_HEADER + 1ull, 0);
    ck_assert_int_eq(ptq_st_open(&st, path, &e), PTQ_EFORMAT);
    ck_assert_msg(strstr(e.msg, "limit"), "%s", e.msg);
    tu_rmrf(dir);
    free(dir);
    free(path);
}
END_TEST

START_TEST(overlapping_offsets)
{
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               12, PTQ_EFORMAT, "overlap");
    /* the same range twice */
    expect_bad("{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
               4, PTQ_EFORMAT, "overlap");
}
END_TEST

START_TEST(out_of_range_offsets)
{
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 16,
               PTQ_EFORMAT, "out of range");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 16,
               PTQ_EFORMAT, "end before");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 16,
               PTQ_EFORMAT, "data_offsets");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 16,
               PTQ_EFORMAT, "data_offsets");
}
END_TEST

START_TEST(unknown_dtype)
{
    expect_bad("{\"a\":{\"dtype\":\"Q4_K\",\"shape\":[4],\"data_offsets\":[0,2]}}", 2,
               PTQ_EFORMAT, "unknown dtype 'Q4_K'");
    expect_bad("{\"a\":{\"dtype\":7,\"shape\":[4],\"data_offsets\":[0,2]}}", 2, PTQ_EFORMAT,
               "dtype");
}
END_TEST

START_TEST(shape_dtype_range_mismatch)
{
    expect_bad("{\"a\":{\"dtype\":\"F16\",\"shape\":[3,4],\"data_offsets\":[0,48]}}", 48,
               PTQ_EFORMAT, "needs 24 bytes");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,6]}}", 6,
               PTQ_EFORMAT, "shape dimension 0");
}
END_TEST

START_TEST(malformed_json)
{
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],", 0, PTQ_EFORMAT, "malformed");
    expect_bad("[1, 2, 3]  ", 0, PTQ_EFORMAT, "malformed");
    expect_bad("{\"a\":1} x", 0, PTQ_EFORMAT, "trailing");
    expect_bad("{\"a\":\"\xff\xfe\"}", 0, PTQ_EFORMAT, "UTF-8");
    expect_bad("{\"a\":[1,2]}", 0, PTQ_EFORMAT, "not an object");
    expect_bad("{\"__metadata__\":{\"format\":1}}", 0, PTQ_EFORMAT, "__metadata__");
}
END_TEST

START_TEST(overflow_shapes)
{
    /* 2^62 x 8 x 4 bytes: more than 2^53, refused as a number before any product */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,8],"
               "\"data_offsets\":[0,8]}}", 8, PTQ_EFORMAT, "not an integer in [0, 2^53)");
    /* each dimension exact, the product 2^83 overflows */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776,8],"
               "\"data_offsets\":[0,8]}}", 8, PTQ_EFORMAT, "overflows");
    /* element count fits, times the dtype size it does not: 2^62 * 4 */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2147483648,2147483648],"
               "\"data_offsets\":[0,8]}}", 8, PTQ_EFORMAT, "overflows");
    /* a zero dimension makes the others harmless */
    char *dir = tu_tmpdir();
    const char *h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[0,1099511627776,1099511627776],"
                    "\"data_offsets\":[0,0]}}";
    char *path = raw_file(dir, "ok.safetensors", h, strlen(h), 0);
    ptq_safetensors st;
    ptq_err e = {0};
    ck_assert_msg(ptq_st_open(&st, path, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(st.ntensors, 1);
    ck_assert_uint_eq(st.tensors[0].nbytes, 0);
    ptq_st_close(&st);
    tu_rmrf(dir);
    free(dir);
    free(path);
}
END_TEST

START_TEST(duplicate_names)
{
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, PTQ_EFORMAT, "duplicate tensor name 'a'");
}
END_TEST

/* index json for the tensor names of files[i] */
static void write_index(const char *path, const char *const *names, const char *const *files, int n)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
    for (int i = 0; i < n; i++) fprintf(f, "%s\"%s\": \"%s\"", i ? ", " : "", names[i], files[i]);
    fprintf(f, "}}\n");
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(shard_missing)
{
    char *dir = tu_tmpdir();
    float x[2] = {1, 2};
    ptq_st_wtensor t[2] = {{"a", PTQ_DT_F32, 1, {2}, x}, {"c", PTQ_DT_F32, 1, {1}, x}};
    char *p1 = tu_fmt("%s/model-00001-of-00002.safetensors", dir);
    ptq_err e = {0};
    ck_assert_msg(ptq_st_write(p1, t, 2, &e) == 0, "%s", e.msg);
    char *index = tu_fmt("%s/model.safetensors.index.json", dir);
    const char *names[2] = {"a", "b"};
    const char *files[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    write_index(index, names, files, 2);
    ptq_safetensors st;
    ck_assert_int_eq(ptq_st_open(&st, dir, &e), PTQ_EIO);
    ck_assert_msg(strstr(e.msg, index) && strstr(e.msg, "model-00002-of-00002.safetensors") &&
                  strstr(e.msg, "No such file"), "%s", e.msg);
    /* a tensor listed for a shard that does not hold it */
    files[1] = files[0];
    write_index(index, names, files, 2);
    ck_assert_int_eq(ptq_st_open(&st, dir, &e), PTQ_EFORMAT);
    ck_assert_msg(strstr(e.msg, index) && strstr(e.msg, "'b'"), "%s", e.msg);
    /* a shard outside the directory */
    files[1] = "../x.safetensors";
    write_index(index, names, files, 2);
    ck_assert_int_eq(ptq_st_open(&st, dir, &e), PTQ_EFORMAT);
    ck_assert_msg(strstr(e.msg, "not a file in the index's directory"), "%s", e.msg);
    /* a shard tensor the index does not list */
    files[0] = "model-00001-of-00002.safetensors";
    write_index(index, names, files, 1);
    ck_assert_int_eq(ptq_st_open(&st, dir, &e), PTQ_EFORMAT);
    ck_assert_msg(strstr(e.msg, "tensor 'c'") && strstr(e.msg, "not listed"), "%s", e.msg);
    /* an empty weight_map */
    write_index(index, names, files, 0);
    ck_assert_int_eq(ptq_st_open(&st, dir, &e), PTQ_EFORMAT);
    ck_assert_msg(strstr(e.msg, "empty"), "%s", e.msg);
    /* the index is not JSON */
    ck_assert_int_eq(tu_write_file(index, "{\"weight_map\": ", 15), 0);
    ck_assert_int_eq(ptq_st_open(&st, dir, &e), PTQ_EFORMAT);
    ck_assert_msg(strstr(e.msg, index) && strstr(e.msg, "malformed"), "%s", e.msg);
    tu_rmrf(dir);
    free(dir);
    free(p1);
    free(index);
}
END_TEST

START_TEST(shard_duplicate_across_files)
{
    char *dir = tu_tmpdir();
    float x[2] = {1, 2};
    ptq_st_wtensor t = {"a", PTQ_DT_F32, 1, {2}, x};
    ptq_err e = {0};
    char *p1 = tu_fmt("%s/s1.safetensors", dir), *p2 = tu_fmt("%s/s2.safetensors", dir);
    ck_assert_int_eq(ptq_st_write(p1, &t, 1, &e), 0);
    ck_assert_int_eq(ptq_st_write(p2, &t, 1, &e), 0);
    char *index = tu_fmt("%s/model.safetensors.index.json", dir);
    const char *names[2] = {"a", "a"};
    const char *files[2] = {"s1.safetensors", "s2.safetensors"};
    write_index(index, names, files, 2);
    ptq_safetensors st;
    ck_assert_int_eq(ptq_st_open(&st, dir, &e), PTQ_EFORMAT);
    ck_assert_msg(strstr(e.msg, p2) && strstr(e.msg, "'a' is also in") && strstr(e.msg, p1),
                  "%s", e.msg);
    /* and two unindexed files in a directory are ambiguous */
    unlink(index);
    ck_assert_int_eq(ptq_st_open(&st, dir, &e), PTQ_EFORMAT);
    ck_assert_msg(strstr(e.msg, "2 *.safetensors files"), "%s", e.msg);
    tu_rmrf(dir);
    free(dir);
    free(p1);
    free(p2);
    free(index);
}
END_TEST

/* ------------------------------------------------------------ good files */

/* Independent decoding of IEEE binary16 for the widening check. */
static double f16_ref(uint16_t h)
{
    int s = h >> 15, ex = (h >> 10) & 31, m = h & 1023;
    double v = ex == 0 ? ldexp(m, -24) : ex == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, ex - 25);
    return s ? -v : v;
}

START_TEST(f16_widening)
{
    char *path = tu_shared("models/stories260k/model.safetensors");
    ptq_safetensors st;
    ptq_err e = {0};
    ck_assert_msg(ptq_st_open(&st, path, &e) == 0, "%s", e.msg);
    size_t n;
    uint8_t *raw = (uint8_t *)tu_read_file(path, &n);
    ck_assert_ptr_nonnull(raw);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | raw[i];
    long subnormals = 0, checked = 0;
    for (int k = 0; k < st.ntensors; k++) {
        const ptq_st_tensor *t = &st.tensors[k];
        ck_assert_int_eq(t->dtype, PTQ_DT_F16);
        size_t ne = (size_t)ptq_st_numel(t);
        float *out = malloc(ne * sizeof *out);
        ck_assert_msg(ptq_st_read_f32(&st, t, 0, ne, out, &e) == 0, "%s", e.msg);
        const uint8_t *p = raw + 8 + hlen + t->offset;
        ck_assert_ptr_eq(t->data, (const uint8_t *)st.maps[0] + 8 + hlen + t->offset);
        for (size_t i = 0; i < ne; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
            ck_assert_msg((double)out[i] == f16_ref(h), "%s[%zu]: 0x%04x -> %a", t->name, i, h,
                          (double)out[i]);
            ck_assert(out[i] == ptq_f16_to_f32(h));
            subnormals += ((h >> 10) & 31) == 0 && (h & 1023) != 0;
            checked++;
        }
        /* a row range alone gives the same values */
        if (t->ndim == 2 && t->shape[0] > 3) {
            size_t cols = (size_t)t->shape[1];
            float *row = malloc(cols * sizeof *row);
            ck_assert_int_eq(ptq_st_read_f32(&st, t, 3 * cols, cols, row, &e), 0);
            ck_assert_int_eq(memcmp(row, out + 3 * cols, cols * sizeof *row), 0);
            /* past the end is refused */
            ck_assert_int_ne(ptq_st_read_f32(&st, t, ne - cols + 1, cols, row, &e), 0);
            free(row);
        }
        free(out);
    }
    ck_assert_int_eq(checked, 260032); /* README: parameters */
    ck_assert_int_eq(subnormals, 102); /* README: F16 subnormals */
    ptq_st_close(&st);
    free(raw);
    free(path);
}
END_TEST

/* The README's table, checked on the real checkpoints, through the
 * checkpoint reader (which also checks them against config.json). */
static void check_model(const char *model, int D, int I, int L, int H, int KV, int hd, int V,
                        int seq, long params)
{
    char *rel = tu_fmt("models/%s", model);
    char *dir = tu_shared(rel);
    free(rel);
    ptq_checkpoint ck;
    ptq_err e = {0};
    ck_assert_msg(ptq_ckpt_open(&ck, dir, &e) == 0, "%s", e.msg);
    const ptq_config *c = &ck.cfg;
    ck_assert_str_eq(c->model_type, "llama");
    ck_assert_int_eq(c->hidden, D);
    ck_assert_int_eq(c->intermediate, I);
    ck_assert_int_eq(c->n_layers, L);
    ck_assert_int_eq(c->n_heads, H);
    ck_assert_int_eq(c->n_kv_heads, KV);
    ck_assert_int_eq(c->head_dim, hd);
    ck_assert_int_eq(c->vocab, V);
    ck_assert_int_eq(c->max_pos, seq);
    ck_assert_int_eq(c->tie_embeddings, 1);
    ck_assert_int_eq(c->qkv_bias, 0);
    ck_assert_int_eq(ck.st.nfiles, 1);
    ck_assert_ptr_null(ck.st.index_path);
    /* every tensor: embed, 9 per layer, final norm; no lm_head */
    ck_assert_int_eq(ck.st.ntensors, 2 + 9 * L);
    ck_assert_ptr_null(ptq_st_find(&ck.st, "lm_head.weight"));
    struct { const char *suffix; int r, c; } per_layer[9] = {
        {"input_layernorm.weight", D, 0},        {"post_attention_layernorm.weight", D, 0},
        {"self_attn.q_proj.weight", H * hd, D},  {"self_attn.k_proj.weight", KV * hd, D},
        {"self_attn.v_proj.weight", KV * hd, D}, {"self_attn.o_proj.weight", D, H * hd},
        {"mlp.gate_proj.weight", I, D},          {"mlp.up_proj.weight", I, D},
        {"mlp.down_proj.weight", D, I},
    };
    long total = 0;
    const ptq_st_tensor *t = ptq_st_find(&ck.st, "model.embed_tokens.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert(t->ndim == 2 && t->shape[0] == V && t->shape[1] == D && t->dtype == PTQ_DT_F16);
    total += (long)ptq_st_numel(t);
    t = ptq_st_find(&ck.st, "model.norm.weight");
    ck_assert(t && t->ndim == 1 && t->shape[0] == D && t->dtype == PTQ_DT_F16);
    total += (long)ptq_st_numel(t);
    for (int l = 0; l < L; l++)
        for (int k = 0; k < 9; k++) {
            char name[128];
            ptq_ckpt_tensor_name(name, sizeof name, l, per_layer[k].suffix);
            t = ptq_st_find(&ck.st, name);
            ck_assert_msg(t != NULL, "%s missing", name);
            ck_assert_int_eq(t->ndim, per_layer[k].c ? 2 : 1);
            ck_assert_int_eq(t->shape[0], per_layer[k].r);
            if (per_layer[k].c) ck_assert_int_eq(t->shape[1], per_layer[k].c);
            ck_assert_int_eq(t->dtype, PTQ_DT_F16);
            total += (long)ptq_st_numel(t);
        }
    ck_assert_int_eq(total, params);
    ck_assert_ptr_nonnull(ck.tok);

    /* the provider: layers widen, the tied head is the embedding */
    ptq_weights w;
    ptq_ckpt_weights(&ck, &w);
    ck_assert_ptr_eq(w.cfg, &ck.cfg);
    ptq_layer_w lw;
    ck_assert_int_eq(ptq_layer_w_alloc(&lw, c, &e), 0);
    for (int l = 0; l < L; l++) ck_assert_msg(w.layer(w.ctx, l, &lw, &e) == 0, "%s", e.msg);
    ck_assert_int_ne(w.layer(w.ctx, L, &lw, &e), 0);
    float *emb = malloc(sizeof(float) * (size_t)V * D),
          *head = malloc(sizeof(float) * (size_t)V * D);
    float *norm = malloc(sizeof(float) * (size_t)D), *rows = malloc(sizeof(float) * 2 * (size_t)D);
    t = ptq_st_find(&ck.st, "model.embed_tokens.weight");
    ck_assert_int_eq(ptq_st_read_f32(&ck.st, t, 0, (size_t)V * D, emb, &e), 0);
    ck_assert_int_eq(w.head(w.ctx, norm, head, &e), 0);
    ck_assert_int_eq(memcmp(emb, head, sizeof(float) * (size_t)V * D), 0);
    int32_t toks[2] = {V - 1, 1};
    ck_assert_int_eq(w.embed(w.ctx, toks, 2, rows, &e), 0);
    ck_assert_int_eq(memcmp(rows, emb + (size_t)(V - 1) * D, sizeof(float) * D), 0);
    ck_assert_int_eq(memcmp(rows + D, emb + D, sizeof(float) * D), 0);
    toks[1] = V;
    ck_assert_int_eq(w.embed(w.ctx, toks, 2, rows, &e), PTQ_EDATA);
    /* layer 2's q_proj equals the file's */
    char name[128];
    ptq_ckpt_tensor_name(name, sizeof name, 2, "self_attn.q_proj.weight");
    t = ptq_st_find(&ck.st, name);
    float *q = malloc(sizeof(float) * (size_t)ptq_st_numel(t));
    ck_assert_int_eq(ptq_st_read_f32(&ck.st, t, 0, (size_t)ptq_st_numel(t), q, &e), 0);
    ck_assert_int_eq(w.layer(w.ctx, 2, &lw, &e), 0);
    ck_assert_int_eq(memcmp(q, lw.w[PTQ_Q], sizeof(float) * (size_t)ptq_st_numel(t)), 0);
    free(q);
    free(emb);
    free(head);
    free(norm);
    free(rows);
    ptq_layer_w_free(&lw);
    ptq_ckpt_close(&ck);
    free(dir);
}

START_TEST(shared_stories260k)
{
    check_model("stories260k", 64, 172, 5, 8, 4, 8, 512, 512, 260032);
}
END_TEST

START_TEST(shared_babyllama105)
{
    check_model("babyllama-105", 128, 352, 5, 8, 4, 16, 105, 256, 936448);
}
END_TEST

START_TEST(write_read_roundtrip)
{
    char *dir = tu_tmpdir();
    char *path = tu_fmt("%s/rt.safetensors", dir);
    /* values exactly representable in each dtype, plus F16 subnormal/extremes */
    float f32[6] = {1.0f, -2.5f, 3.14159274f, 1e-30f, -65504.0f, 0.0f};
    uint16_t f16[6], bf16[6];
    for (int i = 0; i < 6; i++) {
        f16[i] = ptq_f32_to_f16(f32[i]);
        bf16[i] = ptq_f32_to_bf16(f32[i]);
    }
    f16[3] = 0x0001; /* 2^-24, the smallest subnormal */
    int8_t i8[3] = {-128, 0, 127};
    ptq_st_wtensor t[5] = {
        {"z.f32", PTQ_DT_F32, 2, {2, 3}, f32},
        {"a.f16", PTQ_DT_F16, 1, {6}, f16},
        {"m.bf16", PTQ_DT_BF16, 3, {1, 2, 3}, bf16},
        {"q \"quoted\"\\name", PTQ_DT_I8, 1, {3}, i8},
        {"empty", PTQ_DT_F32, 2, {0, 5}, NULL},
    };
    ptq_err e = {0};
    ck_assert_msg(ptq_st_write(path, t, 5, &e) == 0, "%s", e.msg);

    /* file layout: header length a multiple of 8, data in the given order */
    size_t n;
    uint8_t *raw = (uint8_t *)tu_read_file(path, &n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | raw[i];
    ck_assert_uint_eq(hlen % 8, 0);
    ck_assert_uint_eq(n, 8 + hlen + 24 + 12 + 12 + 3);
    ck_assert_int_eq(memcmp(raw + 8 + hlen, f32, 24), 0);
    ck_assert_int_eq(memcmp(raw + 8 + hlen + 24, f16, 12), 0);
    ck_assert_int_eq(raw[8 + hlen - 1] == ' ' || raw[8 + hlen - 1] == '}', 1);
    free(raw);

    ptq_safetensors st;
    ck_assert_msg(ptq_st_open(&st, path, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(st.ntensors, 5);
    for (int i = 1; i < st.ntensors; i++)
        ck_assert_int_lt(strcmp(st.tensors[i - 1].name, st.tensors[i].name), 0);
    float out[6];
    const ptq_st_tensor *x = ptq_st_find(&st, "z.f32");
    ck_assert(x && x->ndim == 2 && x->shape[0] == 2 && x->shape[1] == 3);
    ck_assert_int_eq(ptq_st_read_f32(&st, x, 0, 6, out, &e), 0);
    ck_assert_int_eq(memcmp(out, f32, sizeof out), 0);
    x = ptq_st_find(&st, "a.f16");
    ck_assert_int_eq(ptq_st_read_f32(&st, x, 0, 6, out, &e), 0);
    for (int i = 0; i < 6; i++) ck_assert((double)out[i] == f16_ref(f16[i]));
    ck_assert(out[3] == ldexpf(1.0f, -24));
    x = ptq_st_find(&st, "m.bf16");
    ck_assert(x && x->ndim == 3 && x->shape[2] == 3 && x->dtype == PTQ_DT_BF16);
    ck_assert_int_eq(ptq_st_read_f32(&st, x, 0, 6, out, &e), 0);
    for (int i = 0; i < 6; i++) {
        uint32_t u = (uint32_t)bf16[i] << 16;
        float ref;
        memcpy(&ref, &u, 4);
        ck_assert(out[i] == ref);
    }
    ck_assert(out[0] == 1.0f && out[1] == -2.5f);
    x = ptq_st_find(&st, "q \"quoted\"\\name");
    ck_assert(x && x->dtype == PTQ_DT_I8 && memcmp(x->data, i8, 3) == 0);
    ck_assert_int_eq(ptq_st_read_f32(&st, x, 0, 3, out, &e), PTQ_EFORMAT); /* not a float */
    x = ptq_st_find(&st, "empty");
    ck_assert(x && x->nbytes == 0 && x->shape[1] == 5);
    ck_assert_ptr_null(ptq_st_find(&st, "nope"));
    ptq_st_close(&st);

    /* NaN and Inf are refused when widening, naming tensor and file */
    float bad[3] = {1.0f, INFINITY, NAN};
    ptq_st_wtensor tb = {"w", PTQ_DT_F32, 1, {3}, bad};
    ck_assert_int_eq(ptq_st_write(path, &tb, 1, &e), 0);
    ck_assert_int_eq(ptq_st_open(&st, path, &e), 0);
    ck_assert_int_eq(ptq_st_read_f32(&st, &st.tensors[0], 0, 1, out, &e), 0);
    ck_assert_int_eq(ptq_st_read_f32(&st, &st.tensors[0], 0, 3, out, &e), PTQ_EDATA);
    ck_assert_msg(strstr(e.msg, path) && strstr(e.msg, "tensor w") && strstr(e.msg, "Inf"), "%s",
                  e.msg);
    ptq_st_close(&st);
    tu_rmrf(dir);
    free(dir);
    free(path);
}
END_TEST

START_TEST(write_errors)
{
    ptq_err e = {0};
    float x = 1;
    ptq_st_wtensor t[2] = {{"a", PTQ_DT_F32, 1, {1}, &x}, {"a", PTQ_DT_F32, 1, {1}, &x}};
    char *dir = tu_tmpdir();
    char *path = tu_fmt("%s/w.safetensors", dir);
    ck_assert_int_ne(ptq_st_write(path, t, 2, &e), 0); /* duplicate name */
    struct stat sb;
    ck_assert_int_ne(stat(path, &sb), 0);
    /* a directory that does not exist: PTQ_EOUTPUT, nothing left behind */
    char *bad = tu_fmt("%s/no/such/dir/w.safetensors", dir);
    ck_assert_int_eq(ptq_st_write(bad, t, 1, &e), PTQ_EOUTPUT);
    ck_assert_msg(strstr(e.msg, bad) != NULL, "%s", e.msg);
    /* an existing file is replaced only when the new one is complete */
    ck_assert_int_eq(ptq_st_write(path, t, 1, &e), 0);
    ck_assert_int_ne(ptq_st_write(path, t, 2, &e), 0);
    ptq_safetensors st;
    ck_assert_int_eq(ptq_st_open(&st, path, &e), 0);
    ck_assert_int_eq(st.ntensors, 1);
    ptq_st_close(&st);
    char *cmd = tu_fmt("test $(ls '%s' | wc -l) -eq 1", dir);
    ck_assert_int_eq(system(cmd), 0); /* no temp file left */
    free(cmd);
    tu_rmrf(dir);
    free(dir);
    free(path);
    free(bad);
}
END_TEST

/* ------------------------------------------------------------ checkpoints */

/* A small synthetic llama/qwen2 checkpoint in F32: every tensor the config
 * implies, except `skip`, with `reshape` given shape [r0, r1]. */
typedef struct synth_opts {
    const char *model_type;
    int tie, bias;
    const char *skip, *reshape;
    int r0, r1;
    const char *extra; /* an additional tensor name */
    int shards;
    int nan_in_layer; /* -1: none */
} synth_opts;

enum { SD = 16, SI = 24, SL = 2, SH = 4, SKV = 2, SHD = 4, SV = 20 };

static void write_synth(const char *dir, const synth_opts *o)
{
    char *cfg = tu_fmt("{\"model_type\": \"%s\", \"hidden_size\": %d, \"intermediate_size\": %d, "
                       "\"num_hidden_layers\": %d, \"num_attention_heads\": %d, "
                       "\"num_key_value_heads\": %d, \"vocab_size\": %d, "
                       "\"tie_word_embeddings\": %s, \"attention_bias\": %s, "
                       "\"rms_norm_eps\": 1e-5}",
                       o->model_type, SD, SI, SL, SH, SKV, SV, o->tie ? "true" : "false",
                       o->bias ? "true" : "false");
    char *p = tu_fmt("%s/config.json", dir);
    ck_assert_int_eq(tu_write_file(p, cfg, strlen(cfg)), 0);
    free(p);
    free(cfg);
    ptq_st_wtensor t[64];
    char names[64][96];
    float *bufs[64];
    int n = 0;
    struct { const char *s; int r, c; } lin[7] = {
        {"self_attn.q_proj", SH * SHD, SD}, {"self_attn.k_proj", SKV * SHD, SD},
        {"self_attn.v_proj", SKV * SHD, SD}, {"self_attn.o_proj", SD, SH * SHD},
        {"mlp.gate_proj", SI, SD},           {"mlp.up_proj", SI, SD},
        {"mlp.down_proj", SD, SI},
    };
#define ADD(NAME, R, C)                                                                  \
    do {                                                                                 \
        snprintf(names[n], sizeof names[n], "%s", NAME);                                 \
        int r_ = (R), c_ = (C);                                                          \
        if (o->reshape && !strcmp(names[n], o->reshape)) { r_ = o->r0; c_ = o->r1; }     \
        if (!(o->skip && !strcmp(names[n], o->skip))) {                                  \
            size_t ne_ = (size_t)r_ * (size_t)(c_ ? c_ : 1);                             \
            bufs[n] = malloc(ne_ * sizeof(float));                                       \
            for (size_t i_ = 0; i_ < ne_; i_++) bufs[n][i_] = sinf((float)(n * 1000 + (int)i_)); \
            t[n] = (ptq_st_wtensor){names[n], PTQ_DT_F32, c_ ? 2 : 1, {r_, c_}, bufs[n]}; \
            n++;                                                                         \
        }                                                                                \
    } while (0)
    char nm[96];
    ADD("model.embed_tokens.weight", SV, SD);
    for (int l = 0; l < SL; l++) {
        snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", l);
        ADD(nm, SD, 0);
        snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", l);
        ADD(nm, SD, 0);
        for (int i = 0; i < 7; i++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s.weight", l, lin[i].s);
            ADD(nm, lin[i].r, lin[i].c);
            if (l == o->nan_in_layer && i == 5) bufs[n - 1][7] = NAN;
            if (o->bias && i < 3) {
                snprintf(nm, sizeof nm, "model.layers.%d.%s.bias", l, lin[i].s);
                ADD(nm, lin[i].r, 0);
            }
        }
    }
    ADD("model.norm.weight", SD, 0);
    if (!o->tie) ADD("lm_head.weight", SV, SD);
    if (o->extra) ADD(o->extra, 3, 0);
#undef ADD
    ptq_err e = {0};
    if (o->shards <= 1) {
        p = tu_fmt("%s/model.safetensors", dir);
        ck_assert_msg(ptq_st_write(p, t, n, &e) == 0, "%s", e.msg);
        free(p);
    } else {
        /* two shards, the index written here */
        int half = n / 2;
        const char *files[64];
        const char *nms[64];
        for (int i = 0; i < n; i++) {
            files[i] = i < half ? "model-00001-of-00002.safetensors"
                                : "model-00002-of-00002.safetensors";
            nms[i] = t[i].name;
        }
        p = tu_fmt("%s/%s", dir, files[0]);
        ck_assert_msg(ptq_st_write(p, t, half, &e) == 0, "%s", e.msg);
        free(p);
        p = tu_fmt("%s/%s", dir, files[n - 1]);
        ck_assert_msg(ptq_st_write(p, t + half, n - half, &e) == 0, "%s", e.msg);
        free(p);
        p = tu_fmt("%s/model.safetensors.index.json", dir);
        write_index(p, nms, files, n);
        free(p);
    }
    for (int i = 0; i < n; i++) free(bufs[i]);
}

static synth_opts defaults(void)
{
    return (synth_opts){.model_type = "llama", .tie = 1, .nan_in_layer = -1};
}

static int open_synth(const synth_opts *o, ptq_checkpoint *ck, ptq_err *e, char **dirp)
{
    char *dir = tu_tmpdir();
    write_synth(dir, o);
    int rc = ptq_ckpt_open(ck, dir, e);
    *dirp = dir;
    return rc;
}

static void done_synth(char *dir)
{
    tu_rmrf(dir);
    free(dir);
}

START_TEST(ckpt_wrong_shape)
{
    synth_opts o = defaults();
    o.reshape = "model.layers.0.mlp.up_proj.weight";
    o.r0 = 100;
    o.r1 = SD;
    ptq_checkpoint ck;
    ptq_err e = {0};
    char *dir;
    ck_assert_int_eq(open_synth(&o, &ck, &e, &dir), PTQ_EFORMAT);
    char *want = tu_fmt("%s/model.safetensors: model.layers.0.mlp.up_proj.weight has shape "
                        "[100, 16] but config.json implies [24, 16]", dir);
    ck_assert_str_eq(e.msg, want);
    free(want);
    done_synth(dir);
    /* a 2-D norm */
    o = defaults();
    o.reshape = "model.norm.weight";
    o.r0 = SD;
    o.r1 = 1;
    ck_assert_int_eq(open_synth(&o, &ck, &e, &dir), PTQ_EFORMAT);
    ck_assert_msg(strstr(e.msg, "model.norm.weight has shape [16, 1] but config.json implies [16]"),
                  "%s", e.msg);
    done_synth(dir);
}
END_TEST

START_TEST(ckpt_missing_tensor)
{
    synth_opts o = defaults();
    o.skip = "model.layers.1.self_attn.v_proj.weight";
    ptq_checkpoint ck;
    ptq_err e = {0};
    char *dir;
    ck_assert_int_eq(open_synth(&o, &ck, &e, &dir), PTQ_EFORMAT);
    ck_assert_msg(strstr(e.msg, "model.safetensors: tensor model.layers.1.self_attn.v_proj.weight "
                                "is missing (config.json implies [8, 16])"), "%s", e.msg);
    done_synth(dir);
    /* untied without lm_head */
    o = defaults();
    o.tie = 0;
    o.skip = "lm_head.weight";
    ck_assert_int_eq(open_synth(&o, &ck, &e, &dir), PTQ_EFORMAT);
    ck_assert_msg(strstr(e.msg, "lm_head.weight is missing") &&
                  strstr(e.msg, "tie_word_embeddings is false"), "%s", e.msg);
    done_synth(dir);
    /* qwen2 without its q bias */
    o = defaults();
    o.model_type = "qwen2";
    o.bias = 1;
    o.skip = "model.layers.0.self_attn.q_proj.bias";
    ck_assert_int_eq(open_synth(&o, &ck, &e, &dir), PTQ_EFORMAT);
    ck_assert_msg(strstr(e.msg, "model.layers.0.self_attn.q_proj.bias is missing (config.json "
                                "implies [16])"), "%s", e.msg);
    done_synth(dir);
    /* a bias the model does not use */
    o = defaults();
    o.extra = "model.layers.0.self_attn.o_proj.bias";
    ck_assert_int_eq(open_synth(&o, &ck, &e, &dir), PTQ_EFORMAT);
    ck_assert_msg(strstr(e.msg, "o_proj.bias is present but not supported"), "%s", e.msg);
    done_synth(dir);
    /* no config.json */
    dir = tu_tmpdir();
    ck_assert_int_eq(ptq_ckpt_open(&ck, dir, &e), PTQ_EIO);
    ck_assert_msg(strstr(e.msg, "config.json") != NULL, "%s", e.msg);
    done_synth(dir);
}
END_TEST

START_TEST(ckpt_sharded_untied_bias)
{
    /* the same qwen2-style weights, single file and two shards */
    synth_opts o = defaults();
    o.model_type = "qwen2";
    o.bias = 1;
    o.tie = 0;
    o.extra = "model.layers.0.self_attn.rotary_emb.inv_freq"; /* unused, ignored */
    ptq_checkpoint a, b;
    ptq_err e = {0};
    char *da, *db;
    ck_assert_msg(open_synth(&o, &a, &e, &da) == 0, "%s", e.msg);
    o.shards = 2;
    ck_assert_msg(open_synth(&o, &b, &e, &db) == 0, "%s", e.msg);
    ck_assert_int_eq(b.st.nfiles, 2);
    ck_assert_ptr_nonnull(b.st.index_path);
    ck_assert_int_eq(a.st.ntensors, b.st.ntensors);
    ck_assert_int_eq(a.cfg.qkv_bias, 1);
    ck_assert_ptr_null(a.tok);
    ptq_weights wa, wb;
    ptq_ckpt_weights(&a, &wa);
    ptq_ckpt_weights(&b, &wb);
    ptq_layer_w la, lb;
    ck_assert_int_eq(ptq_layer_w_alloc(&la, &a.cfg, &e), 0);
    ck_assert_int_eq(ptq_layer_w_alloc(&lb, &b.cfg, &e), 0);
    for (int l = 0; l < SL; l++) {
        ck_assert_msg(wa.layer(wa.ctx, l, &la, &e) == 0, "%s", e.msg);
        ck_assert_msg(wb.layer(wb.ctx, l, &lb, &e) == 0, "%s", e.msg);
        for (int i = 0; i < PTQ_NLINEAR; i++) {
            int r, c;
            ptq_linear_shape(&a.cfg, i, &r, &c);
            ck_assert_int_eq(memcmp(la.w[i], lb.w[i], sizeof(float) * (size_t)r * c), 0);
            if (i <= PTQ_V) {
                ck_assert_int_eq(memcmp(la.bias[i], lb.bias[i], sizeof(float) * (size_t)r), 0);
                /* the bias is what write_synth put there: sin(index*1000 + j) */
                char nm[96];
                ptq_ckpt_tensor_name(nm, sizeof nm, l, i == 0 ? "self_attn.q_proj.bias"
                                                       : i == 1 ? "self_attn.k_proj.bias"
                                                                : "self_attn.v_proj.bias");
                const ptq_st_tensor *t = ptq_st_find(&a.st, nm);
                ck_assert_ptr_nonnull(t);
                ck_assert(la.bias[i][1] == ((const float *)t->data)[1]);
            }
        }
        ck_assert_int_eq(memcmp(la.attn_norm, lb.attn_norm, sizeof(float) * SD), 0);
        ck_assert_int_eq(memcmp(la.mlp_norm, lb.mlp_norm, sizeof(float) * SD), 0);
    }
    /* untied: the head is lm_head, not the embedding */
    float *ha = malloc(sizeof(float) * SV * SD), *hb = malloc(sizeof(float) * SV * SD);
    float na[SD], nb[SD], emb[SD];
    ck_assert_int_eq(wa.head(wa.ctx, na, ha, &e), 0);
    ck_assert_int_eq(wb.head(wb.ctx, nb, hb, &e), 0);
    ck_assert_int_eq(memcmp(ha, hb, sizeof(float) * SV * SD), 0);
    int32_t tok = 0;
    ck_assert_int_eq(wa.embed(wa.ctx, &tok, 1, emb, &e), 0);
    ck_assert_int_ne(memcmp(emb, ha, sizeof emb), 0);
    free(ha);
    free(hb);
    ptq_layer_w_free(&la);
    ptq_layer_w_free(&lb);
    ptq_ckpt_close(&a);
    ptq_ckpt_close(&b);
    done_synth(da);
    done_synth(db);
}
END_TEST

START_TEST(ckpt_nan_weight)
{
    synth_opts o = defaults();
    o.nan_in_layer = 1;
    ptq_checkpoint ck;
    ptq_err e = {0};
    char *dir;
    ck_assert_msg(open_synth(&o, &ck, &e, &dir) == 0, "%s", e.msg);
    ptq_weights w;
    ptq_ckpt_weights(&ck, &w);
    ptq_layer_w lw;
    ck_assert_int_eq(ptq_layer_w_alloc(&lw, &ck.cfg, &e), 0);
    ck_assert_int_eq(w.layer(w.ctx, 0, &lw, &e), 0);
    ck_assert_int_eq(w.layer(w.ctx, 1, &lw, &e), PTQ_EDATA);
    ck_assert_msg(strstr(e.msg, "model.layers.1.mlp.up_proj.weight") && strstr(e.msg, "NaN") &&
                  strstr(e.msg, "element 7") && strstr(e.msg, "model.safetensors"), "%s", e.msg);
    ptq_layer_w_free(&lw);
    ptq_ckpt_close(&ck);
    done_synth(dir);
}
END_TEST

/* ------------------------------------------------------------ ptqc inspect */

START_TEST(inspect_cli)
{
    char *dir = tu_shared("models/stories260k");
    char *args = tu_fmt("inspect '%s' --json", dir);
    char *out = NULL, *err = NULL;
    ck_assert_int_eq(tu_ptqc(args, &out, &err), 0);
    cJSON *j = cJSON_Parse(out);
    ck_assert_msg(j != NULL, "not JSON: %s", out);
    const cJSON *tot = cJSON_GetObjectItem(j, "totals");
    ck_assert_int_eq(cJSON_GetObjectItem(tot, "tensors")->valueint, 47);
    ck_assert(cJSON_GetObjectItem(tot, "parameters")->valuedouble == 260032);
    ck_assert(cJSON_GetObjectItem(tot, "bytes")->valuedouble == 2 * 260032);
    const cJSON *cfg = cJSON_GetObjectItem(j, "config");
    ck_assert_int_eq(cJSON_GetObjectItem(cfg, "intermediate_size")->valueint, 172);
    ck_assert(cJSON_GetObjectItem(cfg, "rms_norm_eps")->valuedouble == 1e-5);
    const cJSON *t0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tensors"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(t0, "name")->valuestring, "model.embed_tokens.weight");
    ck_assert_int_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(t0, "shape"), 0)->valueint, 512);
    const cJSON *tok = cJSON_GetObjectItem(j, "tokenizer");
    ck_assert_int_eq(cJSON_GetObjectItem(tok, "vocab_size")->valueint, 512);
    ck_assert_int_eq(cJSON_GetObjectItem(tok, "merges")->valueint, 165);
    ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(tok, "bos"), "id")->valueint, 1);
    cJSON_Delete(j);
    free(out);
    free(err);
    free(args);
    /* text */
    args = tu_fmt("inspect '%s'", dir);
    ck_assert_int_eq(tu_ptqc(args, &out, &err), 0);
    ck_assert_msg(strstr(out, "total: 47 tensors, 260032 parameters, 520064 bytes (F16: 47)") &&
                  strstr(out, "model.layers.4.mlp.down_proj.weight") &&
                  strstr(out, "merges 165"), "%s", out);
    free(out);
    free(err);
    free(args);
    /* errors: usage 2, unreadable 3, malformed 4 naming the file */
    ck_assert_int_eq(tu_ptqc("inspect", &out, &err), PTQ_EUSAGE);
    free(out);
    free(err);
    ck_assert_int_eq(tu_ptqc("inspect --frobnicate x", &out, &err), PTQ_EUSAGE);
    ck_assert_msg(strstr(err, "--frobnicate") != NULL, "%s", err);
    free(out);
    free(err);
    ck_assert_int_eq(tu_ptqc("inspect /nonexistent/model", &out, &err), PTQ_EIO);
    free(out);
    free(err);
    char *tmp = tu_tmpdir();
    const char *h = "{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}";
    char *bad = raw_file(tmp, "bad.safetensors", h, strlen(h), 8);
    args = tu_fmt("inspect '%s'", bad);
    ck_assert_int_eq(tu_ptqc(args, &out, &err), PTQ_EFORMAT);
    ck_assert_msg(strstr(err, bad) && strstr(err, "unknown dtype 'F64'"), "%s", err);
    ck_assert_str_eq(out, "");
    free(out);
    free(err);
    tu_rmrf(tmp);
    free(tmp);
    free(bad);
    free(args);
    free(dir);
}
END_TEST

/* --help and man/ptqc-inspect.1 list the same options. */
START_TEST(inspect_help_matches_man)
{
    char *out = NULL, *err = NULL;
    ck_assert_int_eq(tu_ptqc("inspect --help", &out, &err), 0);
    char *man_path = tu_src("man/ptqc-inspect.1");
    char *man = tu_read_file(man_path, NULL);
    ck_assert_msg(man != NULL, "cannot read %s", man_path);
    ck_assert(strstr(out, "Usage: ptqc inspect PATH [--json]") != NULL);
    const char *help_opts[] = {"--json", "--help", "-h,"};
    const char *man_opts[] = {"\\-\\-json", "\\-\\-help", "\\-h"};
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(strstr(out, help_opts[i]) != NULL, "--help lacks %s", help_opts[i]);
        ck_assert_msg(strstr(man, man_opts[i]) != NULL, "man page lacks %s", man_opts[i]);
    }
    /* every long option the man page documents is in --help */
    for (const char *p = man; (p = strstr(p, ".B \\-\\-")); p += 4) {
        char opt[64];
        int k = 0;
        for (const char *q = p + 3; *q && *q != '\n' && *q != ' ' && *q != '"' && k < 60; q++)
            if (*q != '\\') opt[k++] = *q;
        opt[k] = 0;
        ck_assert_msg(strstr(out, opt) != NULL, "man page documents %s, --help does not", opt);
    }
    /* the same exit statuses */
    const char *codes[] = {"0 success", "2 usage", "3 input unreadable", "4 input malformed",
                           "8 out of memory"};
    for (int i = 0; i < 5; i++) ck_assert_msg(strstr(out, codes[i]), "--help lacks %s", codes[i]);
    const char *man_codes[] = {".B 0\n", ".B 2\n", ".B 3\n", ".B 4\n", ".B 8\n"};
    for (int i = 0; i < 5; i++)
        ck_assert_msg(strstr(man, man_codes[i]), "man lacks %s", man_codes[i]);
    free(out);
    free(err);
    free(man);
    free(man_path);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("safetensors");
    TCase *bad = tcase_create("bad_files");
    tcase_add_test(bad, truncated_file);
    tcase_add_test(bad, header_length_past_end);
    tcase_add_test(bad, header_length_absurd);
    tcase_add_test(bad, overlapping_offsets);
    tcase_add_test(bad, out_of_range_offsets);
    tcase_add_test(bad, unknown_dtype);
    tcase_add_test(bad, shape_dtype_range_mismatch);
    tcase_add_test(bad, malformed_json);
    tcase_add_test(bad, overflow_shapes);
    tcase_add_test(bad, duplicate_names);
    tcase_add_test(bad, shard_missing);
    tcase_add_test(bad, shard_duplicate_across_files);
    suite_add_tcase(s, bad);
    TCase *good = tcase_create("good_files");
    tcase_add_test(good, f16_widening);
    tcase_add_test(good, shared_stories260k);
    tcase_add_test(good, shared_babyllama105);
    tcase_add_test(good, write_read_roundtrip);
    tcase_add_test(good, write_errors);
    suite_add_tcase(s, good);
    TCase *ck = tcase_create("checkpoint");
    tcase_add_test(ck, ckpt_wrong_shape);
    tcase_add_test(ck, ckpt_missing_tensor);
    tcase_add_test(ck, ckpt_sharded_untied_bias);
    tcase_add_test(ck, ckpt_nan_weight);
    suite_add_tcase(s, ck);
    TCase *cli = tcase_create("inspect");
    tcase_add_test(cli, inspect_cli);
    tcase_add_test(cli, inspect_help_matches_man);
    suite_add_tcase(s, cli);
    return tu_run(s);
}
