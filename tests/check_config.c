/* check_config.c - config.json of llama, mistral and qwen2 (formats/config.c).
 *
 * Expected values come from the transformers configuration classes
 * (defaults) and from the JSON written in each test. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/config.h"
#include "tests/testutil.h"

#define BASE "\"hidden_size\": 64, \"intermediate_size\": 172, \"num_hidden_layers\": 2, " \
             "\"num_attention_heads\": 8, \"vocab_size\": 100"

static int parse(const char *json, ptq_config *c, ptq_err *e)
{
    return ptq_config_parse(c, json, strlen(json), "dir/config.json", e);
}

/* json must fail with PTQ_EFORMAT and a message naming the file and `what` */
static void bad(const char *json, const char *what)
{
    ptq_config c;
    ptq_err e = {0};
    int rc = parse(json, &c, &e);
    ck_assert_msg(rc == PTQ_EFORMAT, "status %d for %s (%s)", rc, json, e.msg);
    ck_assert_msg(strncmp(e.msg, "dir/config.json: ", 17) == 0, "no file name: %s", e.msg);
    ck_assert_msg(strstr(e.msg, what) != NULL, "message lacks '%s': %s", what, e.msg);
}

START_TEST(shared_configs)
{
    const char *models[2] = {"models/stories260k/config.json", "models/babyllama-105/config.json"};
    int hidden[2] = {64, 128}, inter[2] = {172, 352}, hd[2] = {8, 16}, V[2] = {512, 105},
        seq[2] = {512, 256};
    for (int i = 0; i < 2; i++) {
        char *p = tu_shared(models[i]);
        ptq_config c;
        ptq_err e = {0};
        ck_assert_msg(ptq_config_load(&c, p, &e) == 0, "%s", e.msg);
        ck_assert_str_eq(c.model_type, "llama");
        ck_assert_int_eq(c.hidden, hidden[i]);
        ck_assert_int_eq(c.intermediate, inter[i]);
        ck_assert_int_eq(c.n_layers, 5);
        ck_assert_int_eq(c.n_heads, 8);
        ck_assert_int_eq(c.n_kv_heads, 4);
        ck_assert_int_eq(c.head_dim, hd[i]);
        ck_assert_int_eq(c.vocab, V[i]);
        ck_assert_int_eq(c.max_pos, seq[i]);
        ck_assert(c.rms_eps == 1e-5f);
        ck_assert(c.rope_theta == 10000.0f);
        ck_assert_int_eq(c.rope_scaling, PTQ_ROPE_NONE);
        ck_assert_int_eq(c.tie_embeddings, 1);
        ck_assert_int_eq(c.qkv_bias, 0);
        ck_assert_int_eq(c.bos_id, 1);
        ck_assert_int_eq(c.eos_id, 2);
        ck_assert_str_eq(c.torch_dtype, "float16");
        free(p);
    }
}
END_TEST

START_TEST(load_missing_file)
{
    ptq_config c;
    ptq_err e = {0};
    ck_assert_int_eq(ptq_config_load(&c, "/nonexistent/config.json", &e), PTQ_EIO);
    ck_assert_msg(strstr(e.msg, "/nonexistent/config.json") != NULL, "%s", e.msg);
}
END_TEST

START_TEST(malformed_json)
{
    bad("{\"model_type\": \"llama\", " BASE, "malformed JSON");
    bad("", "malformed JSON");
    bad("[\"llama\"]", "not a JSON object");
    /* length is respected: the text stops before the closing brace */
    ptq_config c;
    ptq_err e = {0};
    const char *j = "{\"model_type\": \"llama\", " BASE "}";
    ck_assert_int_eq(ptq_config_parse(&c, j, strlen(j) - 1, "x.json", &e), PTQ_EFORMAT);
}
END_TEST

START_TEST(unknown_model_type)
{
    ptq_config c;
    ptq_err e = {0};
    ck_assert_int_eq(parse("{\"model_type\": \"gpt_neox\", " BASE "}", &c, &e), PTQ_EFORMAT);
    ck_assert_str_eq(e.msg, "dir/config.json: model_type 'gpt_neox' is not supported: ptqc knows "
                            "llama, mistral, qwen2");
    bad("{\"model_type\": 3, " BASE "}", "model_type is not a string");
    bad("{\"model_type\": \"Llama\", " BASE "}", "model_type 'Llama' is not supported");
}
END_TEST

START_TEST(missing_field)
{
    bad("{" BASE "}", "missing required field model_type");
    bad("{\"model_type\": \"llama\", \"intermediate_size\": 172, \"num_hidden_layers\": 2, "
        "\"num_attention_heads\": 8, \"vocab_size\": 100}", "missing required field hidden_size");
    bad("{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 172, "
        "\"num_hidden_layers\": 2, \"num_attention_heads\": 8}",
        "missing required field vocab_size");
    bad("{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 172, "
        "\"num_hidden_layers\": 2, \"vocab_size\": 100}",
        "missing required field num_attention_heads");
    bad("{\"model_type\": \"llama\", \"hidden_size\": null, \"intermediate_size\": 172, "
        "\"num_hidden_layers\": 2, \"num_attention_heads\": 8, \"vocab_size\": 100}",
        "missing required field hidden_size");
}
END_TEST

START_TEST(bad_numbers)
{
    bad("{\"model_type\": \"llama\", \"hidden_size\": 0, \"intermediate_size\": 172, "
        "\"num_hidden_layers\": 2, \"num_attention_heads\": 8, \"vocab_size\": 100}",
        "hidden_size is 0, not an integer in [1,");
    bad("{\"model_type\": \"llama\", \"hidden_size\": -64, \"intermediate_size\": 172, "
        "\"num_hidden_layers\": 2, \"num_attention_heads\": 8, \"vocab_size\": 100}",
        "hidden_size is -64");
    bad("{\"model_type\": \"llama\", \"hidden_size\": 64.5, \"intermediate_size\": 172, "
        "\"num_hidden_layers\": 2, \"num_attention_heads\": 8, \"vocab_size\": 100}",
        "hidden_size is 64.5");
    bad("{\"model_type\": \"llama\", \"hidden_size\": \"64\", \"intermediate_size\": 172, "
        "\"num_hidden_layers\": 2, \"num_attention_heads\": 8, \"vocab_size\": 100}",
        "hidden_size is not a number");
    bad("{\"model_type\": \"llama\", \"hidden_size\": 1e300, \"intermediate_size\": 172, "
        "\"num_hidden_layers\": 2, \"num_attention_heads\": 8, \"vocab_size\": 100}",
        "hidden_size is 1.0000000000000001e+300");
    bad("{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 172, "
        "\"num_hidden_layers\": 2, \"num_attention_heads\": 8, \"vocab_size\": 4294967297}",
        "vocab_size is 4294967297");
    bad("{\"model_type\": \"llama\", " BASE ", \"vocab_size\": 100}", "vocab_size appears twice");
    bad("{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 172, "
        "\"num_hidden_layers\": 2, \"num_attention_heads\": 7, \"vocab_size\": 100}",
        "hidden_size 64 is not divisible by num_attention_heads 7");
    bad("{\"model_type\": \"llama\", " BASE ", \"num_key_value_heads\": 3}",
        "num_attention_heads 8 is not a multiple of num_key_value_heads 3");
    bad("{\"model_type\": \"llama\", " BASE ", \"num_key_value_heads\": 0}",
        "num_key_value_heads is 0");
    bad("{\"model_type\": \"llama\", " BASE ", \"head_dim\": 7}", "head_dim 7 is odd");
    bad("{\"model_type\": \"llama\", " BASE ", \"rms_norm_eps\": 0}", "rms_norm_eps is 0");
    bad("{\"model_type\": \"llama\", " BASE ", \"rms_norm_eps\": -1e-5}", "rms_norm_eps");
    bad("{\"model_type\": \"llama\", " BASE ", \"rms_norm_eps\": 1e-60}", "rms_norm_eps");
    bad("{\"model_type\": \"llama\", " BASE ", \"rope_theta\": \"big\"}",
        "rope_theta is not a number");
    bad("{\"model_type\": \"llama\", " BASE ", \"rope_theta\": 1e40}", "rope_theta");
    bad("{\"model_type\": \"llama\", " BASE ", \"tie_word_embeddings\": 1}",
        "tie_word_embeddings is not true or false");
    bad("{\"model_type\": \"llama\", " BASE ", \"bos_token_id\": 100}", "bos_token_id");
    bad("{\"model_type\": \"llama\", " BASE ", \"eos_token_id\": [2, -1]}", "eos_token_id");
    bad("{\"model_type\": \"llama\", " BASE ", \"hidden_act\": \"gelu\"}",
        "hidden_act 'gelu' is not supported");
    bad("{\"model_type\": \"llama\", " BASE ", \"mlp_bias\": true}", "mlp_bias");
    /* heads x head_dim bounded even when each alone is in range */
    bad("{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 172, "
        "\"num_hidden_layers\": 2, \"num_attention_heads\": 4096, \"head_dim\": 4096, "
        "\"vocab_size\": 100}", "num_attention_heads 4096 x head_dim 4096");
}
END_TEST

START_TEST(defaults_and_head_dim)
{
    ptq_config c;
    ptq_err e = {0};
    ck_assert_msg(parse("{\"model_type\": \"llama\", " BASE "}", &c, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(c.head_dim, 8);   /* 64 / 8 */
    ck_assert_int_eq(c.n_kv_heads, 8); /* = heads */
    ck_assert_int_eq(c.max_pos, 2048); /* LlamaConfig */
    ck_assert(c.rms_eps == 1e-6f);
    ck_assert(c.rope_theta == 10000.0f);
    ck_assert_int_eq(c.tie_embeddings, 0);
    ck_assert_int_eq(c.qkv_bias, 0);
    ck_assert_int_eq(c.bos_id, -1);
    ck_assert_int_eq(c.eos_id, -1);
    ck_assert_str_eq(c.torch_dtype, "");
    /* head_dim given: need not divide hidden (e.g. Mistral-Nemo-like) */
    ck_assert_msg(parse("{\"model_type\": \"mistral\", \"hidden_size\": 60, "
                        "\"intermediate_size\": 172, \"num_hidden_layers\": 2, "
                        "\"num_attention_heads\": 8, \"head_dim\": 16, \"vocab_size\": 100, "
                        "\"num_key_value_heads\": 2, \"torch_dtype\": \"bfloat16\", "
                        "\"eos_token_id\": [7, 8], \"bos_token_id\": null}", &c, &e) == 0,
                  "%s", e.msg);
    ck_assert_int_eq(c.head_dim, 16);
    ck_assert_int_eq(c.n_kv_heads, 2);
    ck_assert_int_eq(c.max_pos, 131072); /* MistralConfig */
    ck_assert_int_eq(c.eos_id, 7);
    ck_assert_int_eq(c.bos_id, -1);
    ck_assert_str_eq(c.torch_dtype, "bfloat16");
    ck_assert_str_eq(c.model_type, "mistral");
}
END_TEST

START_TEST(qwen2_bias)
{
    ptq_config c;
    ptq_err e = {0};
    ck_assert_int_eq(parse("{\"model_type\": \"qwen2\", " BASE "}", &c, &e), 0);
    ck_assert_int_eq(c.qkv_bias, 1);
    ck_assert_int_eq(c.max_pos, 32768); /* Qwen2Config */
    /* qwen2 has its biases whatever attention_bias says (the key is not Qwen2's) */
    ck_assert_int_eq(parse("{\"model_type\": \"qwen2\", \"attention_bias\": false, " BASE "}", &c,
                           &e), 0);
    ck_assert_int_eq(c.qkv_bias, 1);
    ck_assert_int_eq(parse("{\"model_type\": \"llama\", \"attention_bias\": true, " BASE "}", &c,
                           &e), 0);
    ck_assert_int_eq(c.qkv_bias, 1);
    ck_assert_int_eq(parse("{\"model_type\": \"mistral\", " BASE "}", &c, &e), 0);
    ck_assert_int_eq(c.qkv_bias, 0);
}
END_TEST

START_TEST(rope_scaling_variants)
{
    ptq_config c;
    ptq_err e = {0};
    /* Llama 3.1's values */
    ck_assert_msg(parse("{\"model_type\": \"llama\", " BASE ", \"rope_theta\": 500000.0, "
                        "\"rope_scaling\": {\"factor\": 8.0, \"low_freq_factor\": 1.0, "
                        "\"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192, "
                        "\"rope_type\": \"llama3\"}}", &c, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(c.rope_scaling, PTQ_ROPE_LLAMA3);
    ck_assert(c.rope_factor == 8.0f);
    ck_assert(c.rope_low_freq_factor == 1.0f);
    ck_assert(c.rope_high_freq_factor == 4.0f);
    ck_assert_int_eq(c.rope_orig_max_pos, 8192);
    ck_assert(c.rope_theta == 500000.0f);
    /* linear, with the older key "type" */
    ck_assert_msg(parse("{\"model_type\": \"llama\", " BASE ", \"rope_scaling\": {\"type\": "
                        "\"linear\", \"factor\": 2.5}}", &c, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(c.rope_scaling, PTQ_ROPE_LINEAR);
    ck_assert(c.rope_factor == 2.5f);
    /* "default" and null mean none */
    ck_assert_int_eq(parse("{\"model_type\": \"llama\", " BASE
                           ", \"rope_scaling\": {\"rope_type\": "
                           "\"default\"}}",
                           &c, &e),
                     0);
    ck_assert_int_eq(c.rope_scaling, PTQ_ROPE_NONE);
    ck_assert_int_eq(parse("{\"model_type\": \"llama\", " BASE ", \"rope_scaling\": null}", &c, &e),
                     0);
    ck_assert_int_eq(c.rope_scaling, PTQ_ROPE_NONE);
    /* refused: other types by name, missing or bad values */
    bad("{\"model_type\": \"llama\", " BASE ", \"rope_scaling\": {\"rope_type\": \"yarn\", "
        "\"factor\": 4.0}}",
        "rope_scaling type 'yarn' is not supported: ptqc knows linear and llama3");
    bad("{\"model_type\": \"llama\", " BASE ", \"rope_scaling\": {\"type\": \"dynamic\", "
        "\"factor\": 4.0}}", "'dynamic' is not supported");
    bad("{\"model_type\": \"llama\", " BASE ", \"rope_scaling\": {\"factor\": 4.0}}",
        "rope_scaling has no \"rope_type\"");
    bad("{\"model_type\": \"llama\", " BASE ", \"rope_scaling\": {\"type\": \"linear\"}}",
        "missing required field rope_scaling.factor");
    bad("{\"model_type\": \"llama\", " BASE ", \"rope_scaling\": {\"type\": \"linear\", "
        "\"factor\": -2}}", "rope_scaling.factor is -2");
    bad("{\"model_type\": \"llama\", " BASE ", \"rope_scaling\": {\"rope_type\": \"llama3\", "
        "\"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0}}",
        "missing required field rope_scaling.original_max_position_embeddings");
    bad("{\"model_type\": \"llama\", " BASE ", \"rope_scaling\": {\"rope_type\": \"llama3\", "
        "\"factor\": 8.0, \"low_freq_factor\": 4.0, \"high_freq_factor\": 4.0, "
        "\"original_max_position_embeddings\": 8192}}",
        "high_freq_factor 4 must be larger than low_freq_factor 4");
    bad("{\"model_type\": \"llama\", " BASE ", \"rope_scaling\": [\"linear\", 2]}",
        "rope_scaling is neither null nor an object");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, shared_configs);
    tcase_add_test(tc, load_missing_file);
    tcase_add_test(tc, malformed_json);
    tcase_add_test(tc, unknown_model_type);
    tcase_add_test(tc, missing_field);
    tcase_add_test(tc, bad_numbers);
    tcase_add_test(tc, defaults_and_head_dim);
    tcase_add_test(tc, qwen2_bias);
    tcase_add_test(tc, rope_scaling_variants);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
