/* check_convert.c - `ptqc convert` (formats/convert.c, src/cmd_convert.c).
 *
 * SmolLM2-135M from its GGUF: the F16 conversion against Hugging Face
 * transformers' golden values for that variant (../shared/models/
 * smollm2-135m/golden: logits-f16.f32 and the per-window NLL of the f16
 * perplexity), the converted tokenizer.json against tokens.jsonl; the F32
 * conversion and a sharded F16 conversion against the source's and the
 * single file's own logits (same weights, same code: equal).  Synthetic
 * models (tests/synth.c) for the rounding (BF16 ties to even, expected bits
 * worked out by hand) and the refusals.  The SmolLM2 conversions are made
 * once, in the suite's unchecked fixture. */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "formats/checkpoint.h"
#include "formats/convert.h"
#include "lib/base/half.h"
#include "lib/model/eval.h"
#include "lib/model/model.h"
#include "tests/synth.h"
#include "tests/testutil.h"

#define SMOL "models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf"
#define GOLD "models/smollm2-135m/golden/"

static char *g_tmp, *g_f16, *g_f32, *g_shard;

static void convert_ok(const char *src, const char *out, const char *flags)
{
    char *err = NULL, *args = tu_fmt("convert '%s' -o '%s' %s", src, out, flags);
    int st = tu_ptqc(args, NULL, &err);
    ck_assert_msg(st == 0, "ptqc %s: status %d: %s", args, st, err ? err : "");
    free(err);
    free(args);
}

static void setup(void)
{
    char *src = tu_shared(SMOL);
    g_tmp = tu_tmpdir();
    g_f16 = tu_fmt("%s/smol-f16", g_tmp);
    g_f32 = tu_fmt("%s/smol-f32", g_tmp);
    g_shard = tu_fmt("%s/smol-shard", g_tmp);
    convert_ok(src, g_f16, "");
    convert_ok(src, g_f32, "--dtype f32 --quiet");
    convert_ok(src, g_shard, "--shard-size 40MB --quiet");
    free(src);
}

static void teardown(void)
{
    tu_rmrf(g_tmp);
    free(g_tmp);
    free(g_f16);
    free(g_f32);
    free(g_shard);
}

static cJSON *read_json(const char *path)
{
    size_t n;
    char *s = tu_read_file(path, &n);
    ck_assert_msg(s != NULL, "cannot read %s", path);
    cJSON *j = cJSON_ParseWithLength(s, n);
    ck_assert_msg(j != NULL, "%s is not JSON", path);
    free(s);
    return j;
}

static cJSON *read_golden(void)
{
    char *p = tu_shared(GOLD "golden.json");
    cJSON *j = read_json(p);
    free(p);
    return j;
}

static void open_ck(ptq_checkpoint *ck, const char *path)
{
    ptq_err e = {0};
    ck_assert_msg(ptq_ckpt_open(ck, path, &e) == PTQ_OK, "%s: %s", path, e.msg);
}

/* The logits of ids [T] through the model at path (malloc'ed [T, V]). */
static float *logits_of(const char *path, const int32_t *ids, int T, int *V)
{
    ptq_checkpoint ck;
    open_ck(&ck, path);
    ptq_weights w;
    ptq_ckpt_weights(&ck, &w);
    ptq_fwd *f;
    ptq_err e = {0};
    ck_assert_msg(ptq_fwd_create(&f, &ck.cfg, T, T, &e) == 0, "%s", e.msg);
    *V = ck.cfg.vocab;
    float *lg = malloc(sizeof(float) * (size_t)T * (size_t)*V);
    ck_assert_msg(ptq_forward(f, &w, ids, 1, T, lg, &e) == 0, "%s", e.msg);
    ptq_fwd_free(f);
    ptq_ckpt_close(&ck);
    return lg;
}

/* The 32 ids of the golden logits (BOS + the first 31 ids of the text). */
static int golden_ids(int32_t *ids)
{
    cJSON *g = read_golden();
    const cJSON *l = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(g, "f16"), "logits"), "ids");
    int T = cJSON_GetArraySize(l);
    ck_assert_int_eq(T, 32);
    for (int i = 0; i < T; i++) ids[i] = cJSON_GetArrayItem(l, i)->valueint;
    cJSON_Delete(g);
    return T;
}

START_TEST(test_f16_files)
{
    static const char *const files[] = {"config.json", "model.safetensors", "tokenizer.json",
                                        "tokenizer_config.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char *p = tu_fmt("%s/%s", g_f16, files[i]);
        ck_assert_msg(tu_exists(p), "%s missing", p);
        free(p);
    }
    char *p = tu_fmt("%s/config.json", g_f16);
    cJSON *c = read_json(p);
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "architectures"), 0)->valuestring,
                     "LlamaForCausalLM");
    ck_assert_str_eq(cJSON_GetObjectItem(c, "model_type")->valuestring, "llama");
    ck_assert_str_eq(cJSON_GetObjectItem(c, "torch_dtype")->valuestring, "float16");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(c, "tie_word_embeddings")));
    ck_assert_int_eq(tu_json_num(c, "hidden_size"), 576);
    ck_assert_int_eq(tu_json_num(c, "intermediate_size"), 1536);
    ck_assert_int_eq(tu_json_num(c, "num_hidden_layers"), 30);
    ck_assert_int_eq(tu_json_num(c, "num_attention_heads"), 9);
    ck_assert_int_eq(tu_json_num(c, "num_key_value_heads"), 3);
    ck_assert_int_eq(tu_json_num(c, "vocab_size"), 49152);
    ck_assert_int_eq(tu_json_num(c, "max_position_embeddings"), 8192);
    ck_assert(tu_json_num(c, "rms_norm_eps") == 1e-5);
    ck_assert(tu_json_num(c, "rope_theta") == 100000.0);
    ck_assert_int_eq(tu_json_num(c, "bos_token_id"), 1);
    ck_assert_int_eq(tu_json_num(c, "eos_token_id"), 2);
    cJSON_Delete(c);
    free(p);
    /* every tensor F16 under its HF name; the tied classifier omitted */
    ptq_checkpoint ck;
    open_ck(&ck, g_f16);
    ck_assert_int_eq(ck.st.nfiles, 1);
    ck_assert_int_eq(ck.st.ntensors, 2 + 30 * 9);
    for (int i = 0; i < ck.st.ntensors; i++)
        ck_assert_msg(ck.st.tensors[i].dtype == PTQ_DT_F16, "%s", ck.st.tensors[i].name);
    ck_assert_ptr_null(ptq_st_find(&ck.st, "lm_head.weight"));
    ck_assert_ptr_nonnull(ptq_st_find(&ck.st, "model.layers.29.self_attn.k_proj.weight"));
    ptq_ckpt_close(&ck);
}
END_TEST

START_TEST(test_f16_logits)
{
    int32_t ids[32];
    int T = golden_ids(ids), V;
    float *lg = logits_of(g_f16, ids, T, &V);
    char *p = tu_shared(GOLD "logits-f16.f32");
    size_t n;
    float *want = (float *)tu_read_file(p, &n);
    ck_assert_uint_eq(n, (size_t)T * (size_t)V * 4);
    double md = 0;
    for (size_t i = 0; i < (size_t)T * V; i++) md = fmax(md, fabs((double)lg[i] - want[i]));
    fprintf(stderr, "smollm2 convert f16: logits max |diff| vs transformers %.3g\n", md);
    ck_assert_msg(md < 1e-3, "max |logit diff| %g >= 1e-3", md);
    free(want);
    free(p);
    free(lg);
}
END_TEST

/* ptqc-ppl-v1 at ctx 512 on the first PTQC_CONVERT_PPL_WINDOWS windows
 * (default 2; 48 = the whole text) of the golden id stream against the sum
 * of the golden f16 per-window NLL. */
START_TEST(test_f16_ppl)
{
    char *ip = tu_shared(GOLD "wiki.test.100k.ids.json");
    cJSON *gi = read_json(ip);
    const cJSON *wi = cJSON_GetObjectItem(gi, "wiki_ids");
    cJSON *g = read_golden();
    const cJSON *pj = cJSON_GetObjectItem(cJSON_GetObjectItem(g, "f16"), "ppl_wiki100k_ctx512");
    const cJSON *wn = cJSON_GetObjectItem(pj, "window_nll");
    const char *env = getenv("PTQC_CONVERT_PPL_WINDOWS");
    int W = env ? atoi(env) : 2;
    if (W < 1 || W > cJSON_GetArraySize(wn)) W = cJSON_GetArraySize(wn);
    ck_assert_int_ge(cJSON_GetArraySize(wi), W * 512);
    int32_t *ids = malloc(sizeof *ids * (size_t)W * 512);
    for (int i = 0; i < W * 512; i++) ids[i] = cJSON_GetArrayItem(wi, i)->valueint;
    double want = 0;
    for (int i = 0; i < W; i++) want += cJSON_GetArrayItem(wn, i)->valuedouble;
    double want_ppl = exp(want / (W * 511.0));
    ptq_checkpoint ck;
    open_ck(&ck, g_f16);
    ptq_weights w;
    ptq_ckpt_weights(&ck, &w);
    ptq_eval_result r;
    ptq_err e = {0};
    ck_assert_msg(ptq_eval_ppl(&w, NULL, ids, (size_t)W * 512, 512, 0, 2, &r, NULL, NULL, &e) == 0,
                  "%s", e.msg);
    ck_assert_int_eq(r.windows, W);
    double rel = fabs(r.ppl / want_ppl - 1);
    fprintf(stderr, "smollm2 convert f16: ppl ctx 512, %d windows: %.6f, transformers %.6f (rel %.2g)\n",
            W, r.ppl, want_ppl, rel);
    ck_assert_msg(rel < 5e-4, "ppl %.6f vs golden %.6f", r.ppl, want_ppl);
    ptq_eval_result_free(&r);
    ptq_ckpt_close(&ck);
    free(ids);
    cJSON_Delete(g);
    cJSON_Delete(gi);
    free(ip);
}
END_TEST

/* The converted tokenizer.json + tokenizer_config.json, read by ptqc's
 * tokenizer reader alone: every line of tokens.jsonl, encode and decode. */
START_TEST(test_tokens)
{
    char *tj = tu_fmt("%s/tokenizer.json", g_f16), *tc = tu_fmt("%s/tokenizer_config.json", g_f16);
    ptq_tokenizer *t;
    ptq_err e = {0};
    ck_assert_msg(ptq_tok_load(&t, tj, tc, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(ptq_tok_bos(t), 1);
    ck_assert_int_eq(ptq_tok_add_bos(t), 0);
    ck_assert_int_eq(ptq_tok_n_merges(t), 48900);
    ck_assert_int_eq(tu_tok_vectors(t, GOLD "tokens.jsonl", 1), 52);
    /* the fields Hugging Face's deserializer requires */
    cJSON *j = read_json(tj);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "version")->valuestring, "1.0");
    const cJSON *pre = cJSON_GetObjectItem(j, "pre_tokenizer");
    ck_assert_str_eq(cJSON_GetObjectItem(pre, "type")->valuestring, "Sequence");
    const cJSON *bl = cJSON_GetArrayItem(cJSON_GetObjectItem(pre, "pretokenizers"), 1);
    ck_assert_str_eq(cJSON_GetObjectItem(bl, "type")->valuestring, "ByteLevel");
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(bl, "trim_offsets"));
    const cJSON *a0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "added_tokens"), 0);
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(a0, "normalized"));
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(a0, "single_word"));
    cJSON_Delete(j);
    free(tj);
    free(tc);
    ptq_tok_free(t);
}
END_TEST

static void expect_equal_logits(const char *a, const char *b, const char *what)
{
    int32_t ids[32];
    int T = golden_ids(ids), Va, Vb;
    T = 8; /* the first 8 ids suffice for an equality */
    float *la = logits_of(a, ids, T, &Va), *lb = logits_of(b, ids, T, &Vb);
    ck_assert_int_eq(Va, Vb);
    size_t diff = 0;
    for (size_t i = 0; i < (size_t)T * Va; i++) diff += la[i] != lb[i];
    ck_assert_msg(diff == 0, "%s: %zu logits differ", what, diff);
    free(la);
    free(lb);
}

START_TEST(test_f32_equals_gguf)
{
    char *src = tu_shared(SMOL);
    expect_equal_logits(src, g_f32, "f32 conversion vs the gguf");
    ptq_checkpoint ck;
    open_ck(&ck, g_f32);
    ck_assert(ck.st.tensors[0].dtype == PTQ_DT_F32);
    ptq_ckpt_close(&ck);
    free(src);
}
END_TEST

START_TEST(test_shards)
{
    char *ip = tu_fmt("%s/model.safetensors.index.json", g_shard);
    cJSON *j = read_json(ip);
    const cJSON *map = cJSON_GetObjectItem(j, "weight_map");
    ck_assert_int_eq(cJSON_GetArraySize(map), 272);
    char *single = tu_fmt("%s/model.safetensors", g_shard);
    ck_assert(!tu_exists(single));
    ptq_checkpoint ck, one;
    open_ck(&ck, g_shard);
    open_ck(&one, g_f16);
    int N = ck.st.nfiles;
    ck_assert_int_gt(N, 2);
    /* the embedding (56.6 MB) alone in the first shard; every other shard
     * at most 40 MB; total_size the single file's tensor bytes */
    char *first = tu_fmt("model-00001-of-%05d.safetensors", N);
    ck_assert_str_eq(cJSON_GetObjectItem(map, "model.embed_tokens.weight")->valuestring, first);
    uint64_t *per = calloc((size_t)N, sizeof *per), total = 0;
    for (int i = 0; i < ck.st.ntensors; i++) per[ck.st.tensors[i].file] += ck.st.tensors[i].nbytes;
    for (int i = 0; i < one.st.ntensors; i++) total += one.st.tensors[i].nbytes;
    int big = 0;
    for (int f = 0; f < N; f++) big += per[f] > 40000000u;
    ck_assert_int_eq(big, 1);
    ck_assert(tu_json_num(cJSON_GetObjectItem(j, "metadata"), "total_size") == (double)total);
    ptq_ckpt_close(&ck);
    ptq_ckpt_close(&one);
    expect_equal_logits(g_f16, g_shard, "sharded vs single-file f16");
    free(per);
    free(first);
    free(single);
    cJSON_Delete(j);
    free(ip);
}
END_TEST

/* ptq_tok_json_complete on the Llama 2 SentencePiece tokenizer.json stripped
 * of every field the generator leaves out (version, post_processor, the
 * added tokens' flags, the BPE model's optional fields; merges as pairs):
 * the fields come back, the merges as "a b" strings, a TemplateProcessing
 * "<s> $A", and ptqc's reader gives the 46 Hugging Face vectors. */
START_TEST(test_complete_spm)
{
    char *p = tu_shared("tokenizers/llama-spm/tokenizer.json");
    cJSON *j = read_json(p);
    static const char *const drop[] = {"version", "truncation", "padding", "post_processor"};
    for (size_t i = 0; i < sizeof drop / sizeof *drop; i++) cJSON_DeleteItemFromObject(j, drop[i]);
    cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(j, "added_tokens"))
    {
        cJSON_DeleteItemFromObject(a, "lstrip");
        cJSON_DeleteItemFromObject(a, "normalized");
    }
    cJSON *model = cJSON_GetObjectItem(j, "model"), *merges = cJSON_CreateArray(), *m;
    cJSON_DeleteItemFromObject(model, "dropout");
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(model, "merges"))
    {
        char *sp = strchr(m->valuestring, ' ');
        ck_assert_ptr_nonnull(sp);
        *sp = 0;
        const char *pair[2] = {m->valuestring, sp + 1};
        cJSON_AddItemToArray(merges, cJSON_CreateStringArray(pair, 2));
    }
    cJSON_ReplaceItemInObject(model, "merges", merges);
    char *in = cJSON_PrintUnformatted(j), *out;
    ptq_err e = {0};
    ck_assert_msg(ptq_tok_json_complete(in, strlen(in), "<s>", 1, &out, &e) == 0, "%s", e.msg);
    cJSON *o = cJSON_Parse(out);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "version")->valuestring, "1.0");
    const cJSON *pp = cJSON_GetObjectItem(o, "post_processor");
    ck_assert_str_eq(cJSON_GetObjectItem(pp, "type")->valuestring, "TemplateProcessing");
    const cJSON *om = cJSON_GetObjectItem(o, "model");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(om, "dropout")));
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(om, "byte_fallback")));
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(om, "merges")), 61249);
    ck_assert(cJSON_IsString(cJSON_GetArrayItem(cJSON_GetObjectItem(om, "merges"), 0)));
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "added_tokens"), 0), "lstrip")));
    ptq_tokenizer *t;
    ck_assert_msg(ptq_tok_load_mem(&t, out, strlen(out), NULL, 0, "completed", &e) == 0, "%s", e.msg);
    ck_assert_int_eq(ptq_tok_bos(t), 1);
    ck_assert_int_eq(ptq_tok_add_bos(t), 1);
    ck_assert_int_eq(tu_tok_vectors(t, "tokenizers/llama-spm/tests.jsonl", 0), 46);
    ptq_tok_free(t);
    cJSON_Delete(o);
    free(out);
    free(in);
    cJSON_Delete(j);
    free(p);
}
END_TEST

/* ---------------------------------------------------------------- synthetic */

/* A tiny synthetic model written as F32 into dir/name; w00 / w01 are put in
 * the first two elements of layer 0's q_proj. */
static char *synth_dir(const char *dir, const char *name, float w00, float w01)
{
    ptq_config c = synth_tiny_config();
    synth_model m;
    ck_assert_int_eq(synth_init(&m, &c, 7), 0);
    m.layers[0].w[PTQ_Q][0] = w00;
    m.layers[0].w[PTQ_Q][1] = w01;
    char *d = tu_fmt("%s/%s", dir, name);
    ck_assert_int_eq(mkdir(d, 0755), 0);
    ptq_err e = {0};
    ck_assert_msg(synth_write(&m, d, PTQ_DT_F32, 1, &e) == 0, "%s", e.msg);
    synth_free(&m);
    return d;
}

/* No entry of dir starts with prefix (no temporary directory left). */
static void assert_no_tmp(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    while ((de = readdir(d)))
        ck_assert_msg(strncmp(de->d_name, prefix, strlen(prefix)) != 0, "%s/%s left behind", dir,
                      de->d_name);
    closedir(d);
}

/* The architecture's options (tests/synth.h variants: qwen2 q/k/v biases,
 * an untied classifier, multi-head attention) from a directory: the F32
 * conversion gives the source's logits exactly, and its config the same
 * ptq_config; lm_head.weight is written exactly when untied. */
START_TEST(test_synth_variants)
{
    char *tmp = tu_tmpdir();
    for (int v = 0; v < SYNTH_NVARIANTS; v++) {
        const char *vname;
        ptq_config c = synth_variant(v, &vname);
        synth_model m;
        ck_assert_int_eq(synth_init(&m, &c, 11 + (uint64_t)v), 0);
        char *src = tu_fmt("%s/src%d", tmp, v), *out = tu_fmt("%s/out%d", tmp, v);
        ck_assert_int_eq(mkdir(src, 0755), 0);
        ptq_err e = {0};
        ck_assert_msg(synth_write(&m, src, PTQ_DT_F32, 1, &e) == 0, "%s", e.msg);
        synth_free(&m);
        convert_ok(src, out, "--dtype f32 --quiet");
        int32_t ids[8] = {1, 5, 9, 2, 33, 17, 60, 3};
        int Va, Vb;
        float *la = logits_of(src, ids, 8, &Va), *lb = logits_of(out, ids, 8, &Vb);
        ck_assert_int_eq(Va, Vb);
        ck_assert_msg(!memcmp(la, lb, sizeof(float) * 8 * (size_t)Va), "%s: logits differ", vname);
        ptq_checkpoint a, b;
        open_ck(&a, src);
        open_ck(&b, out);
        ck_assert_str_eq(a.cfg.model_type, b.cfg.model_type);
        ck_assert_int_eq(a.cfg.qkv_bias, b.cfg.qkv_bias);
        ck_assert_int_eq(a.cfg.tie_embeddings, b.cfg.tie_embeddings);
        ck_assert_int_eq(a.cfg.n_kv_heads, b.cfg.n_kv_heads);
        ck_assert_int_eq(a.cfg.head_dim, b.cfg.head_dim);
        ck_assert(a.cfg.rms_eps == b.cfg.rms_eps && a.cfg.rope_theta == b.cfg.rope_theta);
        ck_assert_int_eq(ptq_st_find(&b.st, "lm_head.weight") != NULL, !c.tie_embeddings);
        ck_assert_int_eq(ptq_st_find(&b.st, "model.layers.1.self_attn.k_proj.bias") != NULL, c.qkv_bias);
        ptq_ckpt_close(&a);
        ptq_ckpt_close(&b);
        free(la);
        free(lb);
        free(src);
        free(out);
    }
    tu_rmrf(tmp);
    free(tmp);
}
END_TEST

/* BF16 rounds to nearest, ties to even: 1 + 2^-8 lies halfway between 1
 * (0x3f80) and 1 + 2^-7 (0x3f81) and goes to the even 0x3f80; 1 + 3 * 2^-8
 * lies halfway between 0x3f81 and 0x3f82 and goes to 0x3f82. */
START_TEST(test_bf16_ties_even)
{
    char *tmp = tu_tmpdir();
    char *src = synth_dir(tmp, "src", 1.00390625f, 1.01171875f), *out = tu_fmt("%s/bf16", tmp);
    convert_ok(src, out, "--dtype bf16 --quiet");
    ptq_checkpoint ck;
    open_ck(&ck, out);
    const ptq_st_tensor *t = ptq_st_find(&ck.st, "model.layers.0.self_attn.q_proj.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert(t->dtype == PTQ_DT_BF16);
    const uint8_t *b = t->data;
    ck_assert_uint_eq((unsigned)(b[0] | b[1] << 8), 0x3f80);
    ck_assert_uint_eq((unsigned)(b[2] | b[3] << 8), 0x3f82);
    ptq_ckpt_close(&ck);
    char *cfg = tu_fmt("%s/config.json", out);
    cJSON *j = read_json(cfg);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "torch_dtype")->valuestring, "bfloat16");
    cJSON_Delete(j);
    free(cfg);
    tu_rmrf(tmp);
    free(tmp);
    free(src);
    free(out);
}
END_TEST

/* F16 refuses |x| > 65504: 70000 (would overflow to Inf) and 65519 (would
 * round down to 65504, but does not fit either); BF16 takes 70000. */
START_TEST(test_refuse_f16_overflow)
{
    char *tmp = tu_tmpdir();
    static const float bad[2] = {70000.0f, -65519.0f};
    for (int i = 0; i < 2; i++) {
        char *name = tu_fmt("src%d", i), *out = tu_fmt("%s/out%d", tmp, i);
        char *src = synth_dir(tmp, name, 0.5f, bad[i]);
        char *args = tu_fmt("convert '%s' -o '%s'", src, out);
        tu_expect_fail(args, 5, "model.layers.0.self_attn.q_proj.weight", out);
        char *err = NULL;
        tu_ptqc(args, NULL, &err);
        ck_assert_msg(strstr(err, i ? "-65519" : "70000") && strstr(err, "element [0, 1]"), "%s", err);
        assert_no_tmp(tmp, i ? "out1." : "out0.");
        if (i == 0) convert_ok(src, out, "--dtype bf16 --quiet");
        free(err);
        free(args);
        free(src);
        free(name);
        free(out);
    }
    tu_rmrf(tmp);
    free(tmp);
}
END_TEST

/* `ptqc convert 'src' -o 'out' FLAGS` must fail (tu_expect_fail: status,
 * needle, nothing at absent when non-NULL). */
static void convert_fails(const char *src, const char *out, const char *flags, int status,
                          const char *needle, const char *absent)
{
    char *args = tu_fmt("convert '%s' -o '%s'%s%s", src, out, flags ? " " : "", flags ? flags : "");
    tu_expect_fail(args, status, needle, absent);
    free(args);
}

START_TEST(test_refuse_output)
{
    char *tmp = tu_tmpdir();
    char *src = synth_dir(tmp, "src", 0.5f, 0.25f), *out = tu_fmt("%s/exists", tmp);
    /* DIR exists: status 6, left as it was (empty) */
    ck_assert_int_eq(mkdir(out, 0755), 0);
    convert_fails(src, out, NULL, 6, "already exists", NULL);
    DIR *d = opendir(out);
    int entries = 0;
    for (struct dirent *de; (de = readdir(d));) entries += de->d_name[0] != '.';
    closedir(d);
    ck_assert_int_eq(entries, 0);
    assert_no_tmp(tmp, "exists.");
    /* the parent does not exist / is a file: status 6, nothing left */
    char *o2 = tu_fmt("%s/missing/out", tmp), *o3 = tu_fmt("%s/config.json/out", src);
    convert_fails(src, o2, NULL, 6, "cannot create a temporary directory", o2);
    convert_fails(src, o3, NULL, 6, "cannot create a temporary directory", o3);
    /* a read-only parent (not for root, whom permissions do not stop) */
    if (geteuid() != 0) {
        char *ro = tu_fmt("%s/ro", tmp), *o4 = tu_fmt("%s/ro/out", tmp);
        ck_assert_int_eq(mkdir(ro, 0555), 0);
        convert_fails(src, o4, NULL, 6, "Permission denied", o4);
        assert_no_tmp(ro, "out.");
        chmod(ro, 0755);
        free(ro);
        free(o4);
    }
    /* usage */
    char *x = tu_fmt("%s/x", tmp), *nothing = tu_fmt("%s/nothing", tmp);
    convert_fails(src, x, "--dtype f8", 2, "--dtype", NULL);
    convert_fails(src, x, "--shard-size 12XB", 2, "--shard-size", NULL);
    convert_fails(nothing, x, NULL, 3, "nothing", NULL);
    assert_no_tmp(tmp, "x");
    free(x);
    free(nothing);
    free(o2);
    free(o3);
    tu_rmrf(tmp);
    free(tmp);
    free(src);
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("convert");
    TCase *tc = tcase_create("synthetic");
    tcase_add_test(tc, test_complete_spm);
    tcase_add_test(tc, test_synth_variants);
    tcase_add_test(tc, test_bf16_ties_even);
    tcase_add_test(tc, test_refuse_f16_overflow);
    tcase_add_test(tc, test_refuse_output);
    suite_add_tcase(s, tc);
    tc = tcase_create("smollm2");
    tcase_set_timeout(tc, 600);
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_f16_files);
    tcase_add_test(tc, test_f16_logits);
    tcase_add_test(tc, test_f16_ppl);
    tcase_add_test(tc, test_tokens);
    tcase_add_test(tc, test_f32_equals_gguf);
    tcase_add_test(tc, test_shards);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
